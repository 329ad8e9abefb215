"""fhir_svc's pure mappings: every resource valid R4, statuses as the contract lists, bookings from FHIR."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from fhir.resources import construct_fhir_element

from clinic.v1 import common_pb2, doctor_pb2, frontdesk_pb2
from clinic_common.errors import InvalidArgument
from fhir_svc import domain
from fhir_svc.handlers import capability_statement

IST = ZoneInfo("Asia/Kolkata")
B = common_pb2


def valid(resource: dict) -> dict:
    construct_fhir_element(resource["resourceType"], resource)
    return resource


def booking(status: int, **kw) -> common_pb2.Booking:
    b = common_pb2.Booking(
        id="b-1",
        patient=common_pb2.Patient(id="p-1", name="Asha"),
        services=[common_pb2.BookedService(service_id="gen-consult", name="General consultation")],
        appointment_date="2026-12-04",
        status=status,
        **kw,
    )
    b.created_at.FromSeconds(1_800_000_000)
    return b


@pytest.mark.parametrize(
    ("status", "visit", "fhir_status"),
    [
        (B.BOOKING_STATUS_PENDING, 0, "pending"),
        (B.BOOKING_STATUS_CONFIRMED, 0, "booked"),
        (B.BOOKING_STATUS_CONFIRMED, frontdesk_pb2.VISIT_STATE_WAITING, "arrived"),
        (B.BOOKING_STATUS_CONFIRMED, frontdesk_pb2.VISIT_STATE_IN_CONSULTATION, "arrived"),
        (B.BOOKING_STATUS_CONFIRMED, frontdesk_pb2.VISIT_STATE_DONE, "fulfilled"),
        (B.BOOKING_STATUS_CONFIRMED, frontdesk_pb2.VISIT_STATE_NO_SHOW, "noshow"),
        (B.BOOKING_STATUS_CANCELLED, 0, "cancelled"),
        (B.BOOKING_STATUS_REJECTED, 0, "cancelled"),
        (B.BOOKING_STATUS_WAITLISTED, 0, "waitlist"),
    ],
)
def test_appointment_status_follows_the_contract(status, visit, fhir_status):
    assert valid(domain.appointment(booking(status), IST, visit))["status"] == fhir_status


def test_a_rejection_carries_its_reason():
    b = booking(B.BOOKING_STATUS_REJECTED, rejection_reason=B.REJECTION_REASON_SLOT_UNAVAILABLE)
    reason = valid(domain.appointment(b, IST))["cancelationReason"]
    assert reason["coding"][0]["code"] == "REJECTION_REASON_SLOT_UNAVAILABLE"


def test_a_timed_visit_has_start_end_and_its_slot():
    b = booking(
        B.BOOKING_STATUS_CONFIRMED, doctor_id="d-1", start_time="10:30", duration_minutes=30, note="knee"
    )
    a = valid(domain.appointment(b, IST))
    assert a["reasonCode"] == [{"text": "knee"}]
    assert a["start"] == "2026-12-04T10:30:00+05:30" and a["end"] == "2026-12-04T11:00:00+05:30"
    assert a["slot"] == [{"reference": "Slot/d-1.20261204.1030"}]
    assert domain.parse_slot_id("d-1.20261204.1030") == ("d-1", "2026-12-04", "10:30")


def test_slots_of_a_day_are_free_where_the_day_says_so():
    day = doctor_pb2.DoctorDay(
        doctor_id="d-1", date="2026-12-04", present=True, day_start="09:00", day_end="10:00",
        free_times=["09:00", "09:30"],
    )  # fmt: skip
    slots = [valid(s) for s in domain.slots(day, 15, IST)]
    assert [s["status"] for s in slots] == ["free", "busy", "free", "busy"]
    absent = doctor_pb2.DoctorDay(
        doctor_id="d-1", date="2026-12-04", present=False, day_start="09:00", day_end="09:30"
    )
    assert {s["status"] for s in domain.slots(absent, 15, IST)} == {"busy-unavailable"}


def test_every_resource_kind_validates():
    valid(domain.patient(common_pb2.Patient(id="p-1", name="A", phone="+919876543210", gender=B.GENDER_MALE)))
    doctor = doctor_pb2.Doctor(
        id="d-1", code="DR-1", name="Dr A", specialty="gp", service_ids=["gen-consult"]
    )
    valid(domain.practitioner(doctor))
    valid(domain.schedule(doctor))
    valid(
        domain.bundle(
            [domain.patient(common_pb2.Patient(id="p-1"))], "http://x/fhir/R4", "http://x/a", "http://x/b", 1
        )
    )
    valid(domain.operation_outcome(400, "bad", [("service_ids[0]", "unknown")]))
    valid(capability_statement("http://x/fhir/R4"))


def test_a_fhir_booking_becomes_the_create_booking_it_asks_for():
    new = domain.new_appointment(
        {
            "resourceType": "Appointment",
            "status": "proposed",
            "serviceType": [{"coding": [{"system": domain.SERVICE_SYSTEM, "code": "gen-consult"}]}],
            "participant": [
                {"actor": {"reference": "Patient/p-1"}, "status": "accepted"},
                {"actor": {"reference": "http://host/fhir/R4/Practitioner/d-1"}, "status": "accepted"},
            ],
            "start": "2026-12-04T05:00:00Z",  # 10:30 in the clinic's time zone
            "minutesDuration": 30,
            "identifier": [{"system": domain.REQUEST_SYSTEM, "value": "r-1"}],
            "reasonCode": [{"text": "knee pain"}],
        },
        IST,
    )
    assert new == domain.NewAppointment(
        "p-1", "d-1", ("gen-consult",), "2026-12-04", "10:30", 30, "r-1", "knee pain"
    )
    assert domain.create_request(new, common_pb2.Patient(id="p-1")).note == "knee pain"


def test_a_bad_fhir_booking_names_create_booking_fields():
    with pytest.raises(InvalidArgument) as bad:
        domain.new_appointment(
            {
                "resourceType": "Appointment",
                "status": "booked",
                "start": "2026-12-04T10:30",
                "participant": [],
            },
            IST,
        )
    fields = {f for f, _ in bad.value.violations}
    assert fields == {"status", "patient.id", "service_ids", "start_time", "doctor_id"}


def test_date_ranges():
    today = date(2026, 12, 3)
    assert domain.date_range([], today) == (today, today)
    assert domain.date_range(["ge2026-12-04", "lt2026-12-06"], today) == (
        date(2026, 12, 4),
        date(2026, 12, 5),
    )
    assert domain.date_range(["2026-12-04"], today) == (date(2026, 12, 4), date(2026, 12, 4))
    for bad in (["soon"], ["ge2026-12-05", "lt2026-12-05"], ["ge2026-01-01", "lt2026-12-01"]):
        with pytest.raises(InvalidArgument):
            domain.date_range(bad, today)
