"""frontdesk_svc's pure rules: who may check in today, queue names, what a patient sees."""

from __future__ import annotations

from datetime import date

import pytest

from clinic.v1 import common_pb2 as c
from clinic.v1 import frontdesk_pb2 as f
from clinic_common import subjects
from clinic_common.errors import FailedPrecondition, InvalidArgument
from frontdesk_svc import domain
from frontdesk_svc.store import queue_of_tag, tag

TODAY = date(2026, 11, 30)


def booking(status=c.BOOKING_STATUS_CONFIRMED, day="2026-11-30") -> c.Booking:
    return c.Booking(id="b1", status=status, appointment_date=day, patient=c.Patient(id="p1"))


def test_a_confirmed_booking_checks_in_on_its_date_only():
    assert domain.check_in_refusal(booking(), TODAY) is None
    assert "appointment date" in domain.check_in_refusal(booking(day="2026-12-01"), TODAY)
    assert "appointment date" in domain.check_in_refusal(booking(day="2026-11-29"), TODAY)
    with pytest.raises(FailedPrecondition):
        domain.require_check_in(booking(day="2026-12-01"), TODAY)


@pytest.mark.parametrize(
    "status",
    [
        c.BOOKING_STATUS_PENDING,
        c.BOOKING_STATUS_REJECTED,
        c.BOOKING_STATUS_CANCELLED,
        c.BOOKING_STATUS_WAITLISTED,
    ],
)
def test_only_a_confirmed_booking_checks_in(status):
    assert "CONFIRMED" in domain.check_in_refusal(booking(status), TODAY)


def test_queue_names_default_to_today_and_refuse_bad_input():
    assert domain.queue_id("", "", TODAY) == domain.QueueId("", "2026-11-30")
    assert domain.queue_id("d-1", "2026-12-02", TODAY) == domain.QueueId("d-1", "2026-12-02")
    for doctor, day in (("d.1", ""), ("d*", ""), ("x" * 65, ""), ("d-1", "2026-1-2"), ("d-1", "tomorrow")):
        with pytest.raises(InvalidArgument):
            domain.queue_id(doctor, day, TODAY)


def test_the_queue_tag_is_one_hash_slot_per_doctor_and_date_and_round_trips():
    for queue in (domain.QueueId("", "2026-11-30"), domain.QueueId("d-42", "2026-11-30")):
        key = tag(queue)
        assert key.startswith("{queue:") and key.endswith("}")
        assert queue_of_tag(key) == queue
    assert tag(domain.QueueId("", "2026-11-30")) == "{queue:general:2026-11-30}"
    assert subjects.visit_subject("", "2026-11-30", "b1") == "visits.general.2026-11-30.b1"


def test_transitions_are_compare_and_set_from_the_allowed_states():
    assert domain.CALL.from_states == (domain.WAITING,)
    assert domain.COMPLETE.from_states == (domain.IN_CONSULTATION,)
    assert set(domain.NO_SHOW_MARK.from_states) == {domain.WAITING, domain.IN_CONSULTATION}
    assert (domain.CALL.to, domain.COMPLETE.to, domain.NO_SHOW_MARK.to) == (
        f.VISIT_STATE_IN_CONSULTATION,
        f.VISIT_STATE_DONE,
        f.VISIT_STATE_NO_SHOW,
    )


def test_a_patient_sees_only_their_own_ids():
    mine = f.Visit(booking_id="b1", patient_id="p1", position=1)
    theirs = f.Visit(booking_id="b2", patient_id="p2", position=2)
    assert domain.for_viewer(mine, "p1") == mine
    hidden = domain.for_viewer(theirs, "p1")
    assert (hidden.booking_id, hidden.patient_id, hidden.position) == ("", "", 2)
    assert domain.for_viewer(theirs, None) == theirs  # staff see everything
    assert theirs.booking_id == "b2"  # the original is untouched


def test_positions_are_one_to_n_each_once():
    assert domain.positions_ok([3, 1, 2])
    assert not domain.positions_ok([1, 2, 2])
    assert not domain.positions_ok([1, 3])
