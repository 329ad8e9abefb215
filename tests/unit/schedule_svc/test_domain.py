"""schedule_svc.domain: phones, times, patients, doctors, days and the places rule (pure functions)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.v1 import common_pb2, doctor_pb2, patient_pb2
from clinic_common.catalog import parse
from schedule_svc import domain
from schedule_svc.domain import PlacesAsk, PlacesDay, PlacesGrant, places_fit, take_places

TODAY = date(2026, 3, 10)
CATALOG = parse(
    {
        "services": [
            {"id": "consult", "name": "Consultation", "price": "500.00", "daily_capacity": 10},
            {"id": "xray", "name": "X-ray", "price": "900.00", "daily_capacity": 2},
        ]
    }
)


def fields(bad: domain.Violations) -> list[str]:
    return [name for name, _why in bad]


# -- phones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["9876543210", "+91 98765 43210", "098765-43210", "0091 9876543210", "(98765) 43.210", "919876543210"],
)
def test_usual_spellings_of_a_phone_become_e164(raw):
    assert domain.normalise_phone(raw, "91") == "+919876543210"


@pytest.mark.parametrize("raw", ["", "12345", "98765abc10", "+0123456789", "1" * 16, "+91"])
def test_what_is_not_a_phone_is_none(raw):
    assert domain.normalise_phone(raw, "91") is None


def test_another_country_code_is_kept():
    assert domain.normalise_phone("+1 415 555 0100", "91") == "+14155550100"
    assert domain.normalise_phone("4155550100", "1") == "+14155550100"


# -- times -------------------------------------------------------------------------------------


def test_intervals_are_half_open():
    assert domain.overlaps((600, 615), (610, 620))
    assert domain.overlaps((600, 700), (620, 630))
    assert not domain.overlaps((600, 615), (615, 630))  # one ends where the next starts
    assert not domain.overlaps((615, 630), (600, 615))


def test_free_times_are_the_slot_grid_minus_what_is_taken():
    assert domain.free_times(540, 600, 15, []) == ["09:00", "09:15", "09:30", "09:45"]
    # 09:10-09:20 touches two slots; 09:45-10:00 one
    assert domain.free_times(540, 600, 15, [(550, 560), (585, 600)]) == ["09:30"]
    assert domain.free_times(540, 590, 30, []) == ["09:00"]  # no slot runs past the end
    assert domain.free_times(540, 600, 15, [(500, 700)]) == []


# -- patients ----------------------------------------------------------------------------------


def test_a_good_patient_has_no_violations():
    assert domain.check_patient_fields("Asha", common_pb2.GENDER_FEMALE, "1990-01-31", "a@b.in", TODAY) == []
    assert domain.check_patient_fields("Asha", common_pb2.GENDER_OTHER, "1990-01-31", "", TODAY) == []


def test_every_bad_patient_field_is_named_with_its_prefix():
    bad = domain.check_patient_fields(" ", 0, "31-01-1990", "not-an-email", TODAY, prefix="patient.")
    assert fields(bad) == ["patient.name", "patient.gender", "patient.date_of_birth", "patient.email"]
    too_long = domain.check_patient_fields("x" * 201, common_pb2.GENDER_MALE, "1990-01-31", "", TODAY)
    assert too_long == [("name", "at most 200 characters")]


def test_a_birth_date_is_not_in_the_future():
    assert domain.check_date_of_birth(TODAY.isoformat(), TODAY) == []
    assert domain.check_date_of_birth((TODAY + timedelta(days=1)).isoformat(), TODAY) == [
        ("date_of_birth", "must not be in the future")
    ]


def test_registration_names_every_bad_field_and_normalises_the_phone():
    good = patient_pb2.RegisterPatientRequest(
        name="Asha", gender=common_pb2.GENDER_FEMALE, date_of_birth="1990-01-31", phone="98765 43210"
    )
    assert domain.validate_registration(good, "91", TODAY) == ([], "+919876543210")
    empty = patient_pb2.RegisterPatientRequest()
    bad, phone = domain.validate_registration(empty, "91", TODAY)
    assert fields(bad) == ["name", "gender", "date_of_birth", "phone"] and phone == ""
    wrong = patient_pb2.RegisterPatientRequest(
        name="Asha", gender=common_pb2.GENDER_FEMALE, date_of_birth="1990-01-31", phone="12ab"
    )
    assert fields(domain.validate_registration(wrong, "91", TODAY)[0]) == ["phone"]


def test_emails_are_compared_trimmed_and_lower_case():
    assert domain.normalise_email("  Asha@Example.IN ") == "asha@example.in"


# -- doctors -----------------------------------------------------------------------------------


def test_a_doctor_gets_the_defaults_it_did_not_set():
    req = doctor_pb2.CreateDoctorRequest(code="dr-1", name=" Rao ", service_ids=["consult"])
    bad, doctor = domain.validate_doctor(req, CATALOG)
    assert bad == []
    assert (doctor.name, doctor.daily_capacity, doctor.slot_minutes) == ("Rao", 10, 15)
    assert (doctor.day_start, doctor.day_end) == ("09:00", "17:00")


def test_every_bad_doctor_field_is_named():
    req = doctor_pb2.CreateDoctorRequest(
        code="bad code!",
        name="",
        specialty="x" * 101,
        service_ids=["consult", "unknown", "consult"],
        daily_capacity=501,
        slot_minutes=5,
        day_start="18:00",
        day_end="09:00",
    )
    bad, _doctor = domain.validate_doctor(req, CATALOG)
    assert fields(bad) == [
        "code",
        "name",
        "specialty",
        "service_ids[1]",
        "service_ids[2]",
        "daily_capacity",
        "slot_minutes",
        "day_end",
    ]


def test_service_ids_are_known_listed_once_and_not_too_many():
    assert fields(domain.check_service_ids([], CATALOG)) == ["service_ids"]
    assert domain.check_service_ids(["consult"] * 21, CATALOG) == [("service_ids", "at most 20 services")]
    assert domain.check_service_ids(["consult", "xray"], CATALOG) == []


def test_hours_are_times_with_the_end_after_the_start():
    assert domain.check_hours("09:00", "17:00") == []
    assert domain.check_hours("09:00", "09:00") == [("day_end", "must be after day_start")]
    assert fields(domain.check_hours("9am", "25:00")) == ["day_start", "day_end"]
    assert domain.check_hours("x", "y", "from", "to") == [
        ("from", "must be a time as HH:MM"),
        ("to", "must be a time as HH:MM"),
    ]


def test_a_day_is_today_up_to_a_year_ahead():
    assert domain.check_day(TODAY.isoformat(), TODAY) == []
    assert domain.check_day((TODAY + timedelta(days=366)).isoformat(), TODAY) == []
    assert domain.check_day((TODAY + timedelta(days=367)).isoformat(), TODAY) == [
        ("date", "at most 366 days ahead")
    ]
    assert domain.check_day((TODAY - timedelta(days=1)).isoformat(), TODAY) == [
        ("date", "must not be before today")
    ]
    assert fields(domain.check_day("10/03/2026", TODAY, "day")) == ["day"]


def test_availability_names_every_bad_field():
    good = doctor_pb2.SetAvailabilityRequest(
        doctor_id="d1", date=TODAY.isoformat(), day_start="10:00", day_end="12:00", daily_capacity=0
    )
    assert domain.validate_availability(good, TODAY) == []
    bad = doctor_pb2.SetAvailabilityRequest(
        doctor_id="", date="tomorrow", note="x" * 501, day_start="10", day_end="12:00", daily_capacity=501
    )
    assert fields(domain.validate_availability(bad, TODAY)) == [
        "doctor_id",
        "date",
        "note",
        "day_start",
        "daily_capacity",
    ]
    backwards = doctor_pb2.SetAvailabilityRequest(
        doctor_id="d1", date=TODAY.isoformat(), day_start="12:00", day_end="10:00"
    )
    assert domain.validate_availability(backwards, TODAY) == [("day_end", "must be after day_start")]
    long_id = doctor_pb2.SetAvailabilityRequest(doctor_id="d" * 65, date=TODAY.isoformat())
    assert domain.validate_availability(long_id, TODAY) == [("doctor_id", "at most 64 characters")]


# -- a doctor's day ----------------------------------------------------------------------------

DOCTOR = doctor_pb2.Doctor(
    id="d1", daily_capacity=3, day_start="09:00", day_end="10:00", slot_minutes=15, service_ids=["consult"]
)


def test_a_day_plan_is_the_doctor_with_the_override_on_top():
    day = date(2026, 3, 11)
    assert domain.resolve_day(DOCTOR, day, {}) == domain.DayPlan(True, "", 3, 540, 600)
    override = {"present": "0", "note": "leave", "capacity": "5", "start": "600", "end": "660"}
    assert domain.resolve_day(DOCTOR, day, override) == domain.DayPlan(
        False, "leave", 5, 600, 660, source="availability"
    )


def test_the_day_view_counts_what_is_left_and_offers_the_free_times():
    plan = domain.resolve_day(DOCTOR, date(2026, 3, 11), {})
    view = domain.day_view(DOCTOR, "2026-03-11", plan, 1, [(555, 570)], waitlisted=2)
    assert (view.capacity, view.booked, view.remaining, view.waitlisted) == (3, 1, 2, 2)
    assert list(view.free_times) == ["09:00", "09:30", "09:45"]
    assert (view.day_start, view.day_end, view.present) == ("09:00", "10:00", True)
    full = domain.day_view(DOCTOR, "2026-03-11", plan, 4, [])
    assert full.remaining == 0 and list(full.free_times) == []  # full: no times offered
    absent = domain.day_view(
        DOCTOR, "2026-03-11", domain.resolve_day(DOCTOR, date(2026, 3, 11), {"present": "0"}), 0, []
    )
    assert absent.remaining == 0 and list(absent.free_times) == [] and not absent.present


# -- the places rule ---------------------------------------------------------------------------

CONSULT = ("consult", 10)
XRAY = ("xray", 2)


def test_the_lowest_free_token_is_taken():
    ask = PlacesAsk("b1", (CONSULT,), doctor_id="d1")
    assert places_fit(ask, PlacesDay(capacity=3)) == (1, "")
    assert places_fit(ask, PlacesDay(capacity=3, tokens=frozenset({1, 3}))) == (2, "")
    assert places_fit(ask, PlacesDay(capacity=3, tokens=frozenset({1, 2, 3}))) == (0, "capacity")
    assert places_fit(ask, PlacesDay(capacity=0)) == (0, "capacity")


def test_an_absent_doctor_gives_no_place():
    assert places_fit(PlacesAsk("b1", (CONSULT,), doctor_id="d1"), PlacesDay(present=False)) == (0, "doctor")


def test_an_interval_lies_inside_the_hours_and_overlaps_nothing():
    day = PlacesDay(start=540, end=600, intervals=((555, 570),))
    ask = PlacesAsk("b1", (CONSULT,), doctor_id="d1", start=540, end=555)
    assert places_fit(ask, day) == (1, "")  # ends where the taken one starts
    assert places_fit(PlacesAsk("b1", (CONSULT,), "d1", 570, 585), day) == (1, "")
    assert places_fit(PlacesAsk("b1", (CONSULT,), "d1", 560, 575), day) == (0, "slot")
    assert places_fit(PlacesAsk("b1", (CONSULT,), "d1", 530, 545), day) == (0, "hours")
    assert places_fit(PlacesAsk("b1", (CONSULT,), "d1", 590, 605), day) == (0, "hours")


def test_without_a_doctor_only_the_services_count():
    day = PlacesDay(present=False, capacity=0, intervals=((0, 1440),))
    assert places_fit(PlacesAsk("b1", (CONSULT,), start=600, end=615), day) == (0, "")


def test_every_service_needs_a_place_left():
    ask = PlacesAsk("b1", (CONSULT, XRAY))
    assert places_fit(ask, PlacesDay(service_held=(("xray", 1),))) == (0, "")
    assert places_fit(ask, PlacesDay(service_held=(("xray", 2),))) == (0, "capacity")


def test_the_doctor_is_checked_before_the_services():
    day = PlacesDay(capacity=1, tokens=frozenset({1}), service_held=(("xray", 2),))
    assert places_fit(PlacesAsk("b1", (XRAY,), doctor_id="d1", start=600, end=615), day) == (0, "capacity")
    hours_first = PlacesDay(start=540, end=600, service_held=(("xray", 2),))
    assert places_fit(PlacesAsk("b1", (XRAY,), "d1", 700, 715), hours_first) == (0, "hours")


def test_taking_places_takes_all_of_them():
    day = PlacesDay(capacity=2, tokens=frozenset({1}))
    grant = take_places(PlacesAsk("b1", (CONSULT, XRAY), doctor_id="d1", start=600, end=615), day)
    assert isinstance(grant, PlacesGrant) and grant.token == 2
    assert grant.day.tokens == {1, 2} and grant.day.intervals == ((600, 615),)
    assert (grant.day.held_of("consult"), grant.day.held_of("xray")) == (1, 1)


def test_a_refusal_takes_nothing():
    day = PlacesDay(capacity=2, service_held=(("xray", 2),))
    ask = PlacesAsk("b1", (CONSULT, XRAY), doctor_id="d1", start=600, end=615)
    assert take_places(ask, day) == "capacity"
    assert day == PlacesDay(capacity=2, service_held=(("xray", 2),))  # frozen, and nothing was taken


asks = st.builds(
    lambda doctor, start, length, services: (
        PlacesAsk("b", tuple(services), doctor_id="d1" if doctor else "", start=start, end=start + length)
        if start >= 0
        else PlacesAsk("b", tuple(services), doctor_id="d1" if doctor else "")
    ),
    st.booleans(),
    st.sampled_from([-1, 480, 540, 555, 570, 585, 600, 975]),
    st.sampled_from([15, 30, 45]),
    st.lists(st.sampled_from([CONSULT, XRAY]), min_size=1, max_size=2, unique=True),
)


@given(st.lists(asks, max_size=25), st.integers(0, 5))
def test_whatever_arrives_no_token_no_minute_and_no_service_place_is_handed_out_twice(stream, capacity):
    day = PlacesDay(capacity=capacity, start=540, end=1020)
    for ask in stream:
        outcome = take_places(ask, day)
        if isinstance(outcome, str):
            continue
        before, day = day, outcome.day
        if outcome.token:
            assert outcome.token not in before.tokens and 1 <= outcome.token <= capacity
            assert outcome.token == min(set(range(1, capacity + 1)) - before.tokens)  # the lowest free
    starts = sorted(day.intervals)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(starts))  # no two overlap
    assert all(540 <= s and e <= 1020 for s, e in day.intervals)
    assert all(day.held_of(sid) <= cap for sid, cap in (CONSULT, XRAY))
    assert len(day.tokens) <= capacity
