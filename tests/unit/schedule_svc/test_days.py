"""Issue 19: how a doctor's date resolves (availability, leave, weekly plan, defaults), what it
offers, and the registry and doctor edits, as pure rules (schedule_svc/domain.py)."""

from __future__ import annotations

from datetime import date

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clinic.v1 import common_pb2 as c
from clinic.v1 import doctor_pb2 as d
from clinic.v1 import patient_pb2
from clinic_common.catalog import DEFAULT_CATALOG, load
from schedule_svc import domain

TODAY = date(2026, 12, 3)  # a Thursday
MONDAY = date(2026, 12, 7)
CATALOG = load(DEFAULT_CATALOG)


def doctor(**kw) -> d.Doctor:
    base = dict(
        id="d-1",
        code="DR-1",
        name="Dr One",
        specialty="general",
        service_ids=["gen-consult"],
        daily_capacity=10,
        day_start="09:00",
        day_end="17:00",
        slot_minutes=15,
    )
    return d.Doctor(**{**base, **kw})


def plan(effective_from: str, *days: d.PlanDay) -> d.WeeklyPlan:
    return d.WeeklyPlan(doctor_id="d-1", effective_from=effective_from, days=list(days))


def monday(**kw) -> d.PlanDay:
    return d.PlanDay(weekday=d.WEEKDAY_MONDAY, present=True, **kw)


LUNCH = d.TimeRange(start="13:00", end="14:00")


# -- resolve_day: the precedence -----------------------------------------------------------------


def test_defaults_when_nothing_else_applies():
    p = domain.resolve_day(doctor(), MONDAY, {})
    assert (p.present, p.start, p.end, p.capacity, p.breaks, p.source) == (
        True,
        540,
        1020,
        10,
        (),
        "defaults",
    )


def test_the_plan_in_force_gives_the_weekdays_hours_and_breaks():
    plans = [plan("2026-12-01", monday(day_start="10:00", day_end="14:30", breaks=[LUNCH]))]
    p = domain.resolve_day(doctor(), MONDAY, {}, None, plans)
    assert (p.start, p.end, p.breaks, p.source) == (600, 870, ((780, 840),), "plan")
    tuesday = domain.resolve_day(doctor(), date(2026, 12, 8), {}, None, plans)
    assert tuesday.source == "defaults"  # a weekday the plan does not list keeps the defaults


def test_the_latest_plan_on_or_before_the_date_is_in_force():
    early = plan("2026-11-01", monday(day_start="07:00"))
    later = plan("2026-12-07", monday(day_start="11:00"))
    future = plan("2026-12-08", monday(day_start="12:00"))
    assert domain.resolve_day(doctor(), MONDAY, {}, None, [future, early, later]).start == 660
    assert domain.resolve_day(doctor(), date(2026, 11, 30), {}, None, [future, early, later]).start == 420
    assert (
        domain.resolve_day(doctor(), date(2026, 10, 26), {}, None, [future, early, later]).source
        == "defaults"
    )


def test_a_plan_day_off_is_absent():
    plans = [plan("2026-12-01", d.PlanDay(weekday=d.WEEKDAY_MONDAY, present=False))]
    assert not domain.resolve_day(doctor(), MONDAY, {}, None, plans).present


def test_leave_beats_the_plan_and_availability_beats_leave():
    plans = [plan("2026-12-01", monday(day_start="10:00", breaks=[LUNCH]))]
    on_leave = domain.resolve_day(doctor(), MONDAY, {}, {"note": "conference"}, plans)
    assert (on_leave.present, on_leave.source, on_leave.on_leave, on_leave.note) == (
        False,
        "leave",
        True,
        "conference",
    )
    back = domain.resolve_day(doctor(), MONDAY, {"present": "1", "end": "720"}, {"note": "x"}, plans)
    assert (back.present, back.source, back.start, back.end) == (True, "availability", 600, 720)
    assert back.breaks == ((780, 840),)  # the plan's breaks still take time away


def test_availability_sets_capacity_and_absence():
    p = domain.resolve_day(doctor(), MONDAY, {"present": "0", "capacity": "3", "note": "ill"})
    assert (p.present, p.capacity, p.note, p.source) == (False, 3, "ill", "availability")


def test_a_retired_doctor_is_never_present():
    p = domain.resolve_day(doctor(retired=True), MONDAY, {"present": "1"})
    assert not p.present and p.retired


# -- what a day takes and offers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "why"),
    [
        ((540, 555), ""),
        ((765, 780), ""),  # ends as the break starts
        ((840, 855), ""),  # starts as it ends
        ((770, 785), "hours"),  # into the break
        ((780, 795), "hours"),
        ((720, 900), "hours"),  # across it
        ((530, 545), "hours"),  # before the day
        ((1010, 1025), "hours"),  # after it
    ],
)
def test_fits_day_refuses_breaks_and_outside_hours(interval, why):
    p = domain.DayPlan(True, "", 10, 540, 1020, ((780, 840),))
    assert domain.fits_day(p, interval) == why


def test_fits_day_refuses_an_absent_day_even_without_an_interval():
    assert domain.fits_day(domain.DayPlan(False, "", 10, 540, 1020), None) == "doctor"
    assert domain.fits_day(domain.DayPlan(True, "", 10, 540, 1020), None) == ""


def test_free_times_skip_breaks_bookings_and_the_past():
    p = domain.DayPlan(True, "", 10, 720, 900, ((780, 840),))
    offered = domain.free_times_of(doctor(slot_minutes=30), p, 1, [(720, 750)], not_before=721)
    assert offered == ["12:30", "14:00", "14:30"]
    assert domain.free_times_of(doctor(slot_minutes=30), p, 1, [], duration=60) == ["12:00", "14:00"]


def test_free_times_are_empty_when_absent_or_full():
    assert domain.free_times_of(doctor(), domain.DayPlan(False, "", 10, 540, 1020), 0, []) == []
    assert domain.free_times_of(doctor(), domain.DayPlan(True, "", 2, 540, 1020), 2, []) == []


def test_day_view_shows_breaks_leave_and_the_source():
    p = domain.resolve_day(doctor(), MONDAY, {}, None, [plan("2026-12-01", monday(breaks=[LUNCH]))])
    view = domain.day_view(doctor(), MONDAY.isoformat(), p, 0, [])
    assert [(b.start, b.end) for b in view.breaks] == [("13:00", "14:00")]
    assert view.hours_source == d.HOURS_SOURCE_WEEKLY_PLAN
    assert "13:00" not in view.free_times and "13:45" not in view.free_times and "14:00" in view.free_times


# -- validating plans, leave, FindSlots ----------------------------------------------------------


def _fields(bad) -> set[str]:
    return {field for field, _ in bad}


def test_a_good_weekly_plan_passes():
    req = d.SetWeeklyPlanRequest(
        doctor_id="d-1", effective_from="2026-12-07", days=[monday(breaks=[LUNCH]), d.PlanDay(weekday=7)]
    )
    assert domain.validate_weekly_plan(req, TODAY) == []


def test_every_bad_plan_field_is_named():
    req = d.SetWeeklyPlanRequest(
        doctor_id="",
        effective_from="2026-13-01",
        days=[
            d.PlanDay(weekday=0, present=True),
            monday(day_start="9am"),
            monday(breaks=[d.TimeRange(start="13:00", end="12:00")]),
            d.PlanDay(weekday=2, present=True, breaks=[LUNCH, d.TimeRange(start="13:30", end="14:30")]),
            d.PlanDay(weekday=3, present=False, day_start="09:00"),
        ],
    )
    assert _fields(domain.validate_weekly_plan(req, TODAY)) == {
        "doctor_id",
        "effective_from",
        "days[0].weekday",
        "days[1].day_start",
        "days[2].weekday",
        "days[2].breaks[0].end",
        "days[3].breaks[1]",
        "days[4].present",
    }


def test_plan_breaks_must_lie_within_the_days_hours():
    req = d.SetWeeklyPlanRequest(days=[monday(day_end="12:00", breaks=[LUNCH])])
    assert _fields(domain.check_plan_against_doctor(req, doctor())) == {"days[0].breaks[0]"}
    late = d.SetWeeklyPlanRequest(days=[monday(day_start="18:00")])
    assert _fields(domain.check_plan_against_doctor(late, doctor())) == {"days[0].day_end"}


def test_leave_dates_and_their_limits():
    bad, days = domain.validate_leave("d-1", "2026-12-07", "2026-12-09", "", TODAY)
    assert bad == [] and [x.isoformat() for x in days] == ["2026-12-07", "2026-12-08", "2026-12-09"]
    assert _fields(domain.validate_leave("d-1", "2026-12-09", "2026-12-07", "", TODAY)[0]) == {"to"}
    assert _fields(domain.validate_leave("d-1", "2026-12-07", "2027-03-01", "", TODAY)[0]) == {"to"}
    assert _fields(domain.validate_leave("", "2026-12-01", "x", "n" * 501, TODAY)[0]) == {
        "doctor_id",
        "from",
        "to",
        "note",
    }


def test_find_slots_range_at_most_31_days():
    ok = d.FindSlotsRequest(service_id="gen-consult", date_from="2026-12-03", date_to="2027-01-03")
    bad, days = domain.validate_find_slots(ok, TODAY)
    assert bad == [] and len(days) == 32
    too_long = d.FindSlotsRequest(service_id="gen-consult", date_from="2026-12-03", date_to="2027-01-04")
    assert _fields(domain.validate_find_slots(too_long, TODAY)[0]) == {"date_to"}
    nothing = d.FindSlotsRequest(duration_minutes=5, limit=101)
    assert _fields(domain.validate_find_slots(nothing, TODAY)[0]) == {
        "service_id",
        "duration_minutes",
        "limit",
    }


# -- editing patients and doctors ----------------------------------------------------------------


def registered() -> c.Patient:
    return c.Patient(
        id="p-1", name="Asha", gender=c.GENDER_FEMALE, date_of_birth="1990-01-01", phone="+919876543210"
    )


def update(paths, **kw) -> patient_pb2.UpdatePatientRequest:
    return patient_pb2.UpdatePatientRequest(patient_id="p-1", update_mask=FieldMask(paths=paths), **kw)


def test_a_patient_update_changes_only_the_masked_fields():
    bad, new = domain.apply_patient_update(
        registered(),
        update(["phone", "contact"], name="ignored", phone="98765-00000", contact=c.ContactConsent(sms=True)),
        "91",
        TODAY,
    )
    assert bad == []
    assert (new.name, new.phone, new.contact.sms, new.contact.email) == ("Asha", "+919876500000", True, False)


def test_bad_patient_updates_name_each_field():
    bad, _ = domain.apply_patient_update(
        registered(),
        update(["name", "phone", "email", "gender", "date_of_birth", "colour"], phone="12", email="x@"),
        "91",
        TODAY,
    )
    assert _fields(bad) == {"name", "phone", "email", "gender", "date_of_birth", "update_mask"}
    assert _fields(domain.apply_patient_update(registered(), update([]), "91", TODAY)[0]) == {"update_mask"}


def test_email_consent_needs_an_email():
    bad, _ = domain.apply_patient_update(
        registered(), update(["contact"], contact=c.ContactConsent(email=True)), "91", TODAY
    )
    assert _fields(bad) == {"contact.email"}
    ok, new = domain.apply_patient_update(
        registered(),
        update(["contact", "email"], email="A@B.in", contact=c.ContactConsent(email=True)),
        "91",
        TODAY,
    )
    assert ok == [] and new.email == "a@b.in"


def doctor_update(paths, **kw) -> d.UpdateDoctorRequest:
    return d.UpdateDoctorRequest(doctor_id="d-1", update_mask=FieldMask(paths=paths), **kw)


def test_a_doctor_update_changes_only_the_masked_fields():
    bad, new = domain.apply_doctor_update(
        doctor(),
        doctor_update(["retired", "day_end"], retired=True, day_end="13:00", name="ignored"),
        CATALOG,
    )
    assert bad == [] and (new.retired, new.day_end, new.name, new.code) == (True, "13:00", "Dr One", "DR-1")


def test_bad_doctor_updates_name_each_field():
    bad, _ = domain.apply_doctor_update(
        doctor(),
        doctor_update(
            ["name", "service_ids", "daily_capacity", "slot_minutes", "day_start", "code"],
            name=" ",
            service_ids=["nope"],
            daily_capacity=0,
            slot_minutes=5,
            day_start="18:00",
        ),
        CATALOG,
    )
    assert _fields(bad) == {
        "name",
        "service_ids[0]",
        "daily_capacity",
        "slot_minutes",
        "day_end",
        "update_mask",
    }


# -- the CLI's weekly plan days ------------------------------------------------------------------


def test_plan_days_from_the_command_line():
    from clinic_cli.week import parse_plan_day

    day = parse_plan_day("Mon 09:00-17:00 break 13:00-14:00 16:00-16:15")
    assert (day.weekday, day.present, day.day_start, day.day_end) == (
        d.WEEKDAY_MONDAY,
        True,
        "09:00",
        "17:00",
    )
    assert [(b.start, b.end) for b in day.breaks] == [("13:00", "14:00"), ("16:00", "16:15")]
    assert parse_plan_day("sun off") == d.PlanDay(weekday=d.WEEKDAY_SUNDAY, present=False)
    assert parse_plan_day("tue break 12:00-12:30").day_start == ""  # the defaults' hours
    for bad in ("", "xyz 09:00-10:00", "sun off 09:00-10:00", "mon 0900", "mon 09:00-10:00 lunch"):
        with pytest.raises(ValueError):
            parse_plan_day(bad)


def test_mask_paths_may_be_camel_case():
    bad, new = domain.apply_doctor_update(
        doctor(), doctor_update(["slotMinutes", "dayEnd"], slot_minutes=30, day_end="12:00"), CATALOG
    )
    assert bad == [] and (new.slot_minutes, new.day_end) == (30, "12:00")
    bad, new = domain.apply_patient_update(
        registered(), update(["dateOfBirth"], date_of_birth="1991-02-03"), "91", TODAY
    )
    assert bad == [] and new.date_of_birth == "1991-02-03"
