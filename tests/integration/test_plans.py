"""Issue 19: editing patients and doctors, working plans, leave, the absent doctor and FindSlots,
through the gateway against the real services."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import grpc
import nats
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clinic.v1 import common_pb2 as c
from clinic.v1 import doctor_pb2, patient_pb2, saga_pb2
from clinic_common import subjects
from tests.harness import IST, Client, future_date, patient, today_ist, uid, wait_for
from tests.integration.test_schedule import bad_fields, book

R = c.RejectionReason
STAFF = Client.auth("desk-1", "staff")


def _phone() -> str:
    return "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))


async def register(client: Client, **kw) -> c.Patient:
    req = patient_pb2.RegisterPatientRequest(
        name=kw.pop("name", "Asha Rao"),
        phone=kw.pop("phone", None) or _phone(),
        gender=c.GENDER_FEMALE,
        date_of_birth="1990-04-01",
        **kw,
    )
    return (await client.patients.RegisterPatient(req, metadata=STAFF)).patient


async def update_patient(client: Client, patient_id: str, paths, md=None, **kw) -> c.Patient:
    req = patient_pb2.UpdatePatientRequest(patient_id=patient_id, update_mask=FieldMask(paths=paths), **kw)
    return (await client.patients.UpdatePatient(req, metadata=md or STAFF, timeout=10)).patient


async def find_by_phone(client: Client, phone: str) -> list[str]:
    req = patient_pb2.FindPatientsRequest(phone=phone)
    return [p.id for p in (await client.patients.FindPatients(req, metadata=STAFF)).patients]


async def update_doctor(client: Client, doctor_id: str, paths, **kw) -> doctor_pb2.Doctor:
    req = doctor_pb2.UpdateDoctorRequest(doctor_id=doctor_id, update_mask=FieldMask(paths=paths), **kw)
    return (await client.doctors.UpdateDoctor(req, metadata=Client.auth(), timeout=10)).doctor


async def get_doctor(client: Client, doctor_id: str) -> doctor_pb2.Doctor:
    req = doctor_pb2.GetDoctorRequest(doctor_id=doctor_id)
    return (await client.doctors.GetDoctor(req, metadata=STAFF)).doctor


def weekday_of(day: str) -> int:
    return date.fromisoformat(day).isoweekday()


async def set_plan(client: Client, doctor_id: str, effective_from: str, *days: doctor_pb2.PlanDay):
    req = doctor_pb2.SetWeeklyPlanRequest(doctor_id=doctor_id, effective_from=effective_from, days=list(days))
    return (await client.doctors.SetWeeklyPlan(req, metadata=STAFF, timeout=10)).plan


async def set_leave(client: Client, doctor_id: str, first: str, last: str, note: str = "leave"):
    req = doctor_pb2.SetLeaveRequest(doctor_id=doctor_id, note=note, **{"from": first, "to": last})
    return await client.doctors.SetLeave(req, metadata=STAFF, timeout=20)


async def invalid(call) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return bad_fields(caught.value)


# -- UpdatePatient -------------------------------------------------------------------------------


async def test_update_patient_moves_the_phone_index_and_keeps_the_rest(client: Client):
    asha = await register(client, email="asha@example.com", contact=c.ContactConsent(sms=True))
    assert (asha.contact.sms, asha.contact.email) == (True, False)
    new_phone = _phone()
    updated = await update_patient(
        client,
        asha.id,
        ["phone", "name", "contact"],
        phone=f"{new_phone[:5]}-{new_phone[5:]}",
        name="Asha R",
        contact=c.ContactConsent(email=True, whatsapp=True),
    )
    assert (updated.phone, updated.name, updated.email) == (f"+91{new_phone}", "Asha R", "asha@example.com")
    got = (
        await client.patients.GetPatient(patient_pb2.GetPatientRequest(patient_id=asha.id), metadata=STAFF)
    ).patient
    assert got == updated and (got.contact.email, got.contact.sms, got.contact.whatsapp) == (
        True,
        False,
        True,
    )
    assert await find_by_phone(client, new_phone) == [asha.id]
    assert await find_by_phone(client, asha.phone) == []  # the old phone is free again
    again = await register(client, phone=asha.phone)
    assert again.id != asha.id


async def test_a_phone_held_by_another_patient_is_already_exists_naming_them(client: Client):
    first, second = await register(client), await register(client)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update_patient(client, second.id, ["phone"], phone=first.phone)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.id in caught.value.details()
    assert await find_by_phone(client, second.phone) == [second.id]


async def test_bad_patient_updates_name_each_field_and_change_nothing(client: Client):
    asha = await register(client)
    fields = await invalid(
        client.patients.UpdatePatient(
            patient_pb2.UpdatePatientRequest(
                patient_id=asha.id,
                update_mask=FieldMask(paths=["name", "phone", "email", "date_of_birth", "gender", "height"]),
                name="",
                phone="12ab",
                email="nope",
                date_of_birth="2999-01-01",
            ),
            metadata=STAFF,
        )
    )
    assert set(fields) == {"name", "phone", "email", "date_of_birth", "gender", "update_mask"}
    got = (
        await client.patients.GetPatient(patient_pb2.GetPatientRequest(patient_id=asha.id), metadata=STAFF)
    ).patient
    assert got == asha


async def test_a_patient_updates_their_own_record_only(client: Client):
    asha, bob = await register(client), await register(client)
    mine = await update_patient(client, asha.id, ["name"], md=Client.auth(asha.id, "patient"), name="Asha K")
    assert mine.name == "Asha K"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update_patient(client, bob.id, ["name"], md=Client.auth(asha.id, "patient"), name="Hacked")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_twenty_patients_updating_to_one_phone_exactly_one_wins(client: Client):
    people = await asyncio.gather(*(register(client) for _ in range(20)))
    contested = _phone()
    results = await asyncio.gather(
        *(update_patient(client, p.id, ["phone"], phone=contested) for p in people), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, c.Patient)]
    losers = [r for r in results if not isinstance(r, c.Patient)]
    assert len(winners) == 1
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}
    assert all(winners[0].id in e.details() for e in losers)
    assert await find_by_phone(client, contested) == [winners[0].id]
    for p in people:  # the losers still hold their own phones
        if p.id != winners[0].id:
            assert await find_by_phone(client, p.phone) == [p.id]


# -- UpdateDoctor and retirement -----------------------------------------------------------------


async def test_update_doctor_is_seen_at_once_and_bad_fields_change_nothing(client: Client):
    doctor = await client.doctor()
    assert (await get_doctor(client, doctor.id)).slot_minutes == 15  # read (and, before, cached)
    updated = await update_doctor(
        client,
        doctor.id,
        ["slot_minutes", "day_start", "name"],
        slot_minutes=30,
        day_start="10:00",
        name="Dr Rao",
    )
    assert (updated.slot_minutes, updated.day_start, updated.name, updated.code) == (
        30,
        "10:00",
        "Dr Rao",
        doctor.code,
    )
    day = future_date()
    view = await client.doctor_day(doctor.id, day)
    assert view.free_times[:2] == ["10:00", "10:30"]
    fields = await invalid(
        client.doctors.UpdateDoctor(
            doctor_pb2.UpdateDoctorRequest(
                doctor_id=doctor.id,
                update_mask=FieldMask(paths=["service_ids", "daily_capacity", "day_end", "code"]),
                service_ids=["no-such"],
                daily_capacity=0,
                day_end="09:00",
            ),
            metadata=Client.auth(),
        )
    )
    assert set(fields) == {"service_ids[0]", "daily_capacity", "day_end", "update_mask"}
    assert await get_doctor(client, doctor.id) == updated


async def test_a_retired_doctor_takes_no_new_bookings_and_keeps_confirmed_ones(client: Client):
    doctor = await client.doctor()
    day = future_date()
    kept = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert kept.status == c.BOOKING_STATUS_CONFIRMED
    retired = await update_doctor(client, doctor.id, ["retired"], retired=True)
    assert retired.retired
    refused = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert (refused.status, refused.rejection_reason) == (
        c.BOOKING_STATUS_REJECTED,
        R.Value("REJECTION_REASON_DOCTOR_UNAVAILABLE"),
    )
    assert (await client.get(kept.id)).status == c.BOOKING_STATUS_CONFIRMED
    listed = await client.doctors.ListDoctors(doctor_pb2.ListDoctorsRequest(), metadata=STAFF)
    assert doctor.id not in [d.id for d in listed.doctors]
    everyone = await client.doctors.ListDoctors(
        doctor_pb2.ListDoctorsRequest(include_retired=True), metadata=STAFF
    )
    assert [d.retired for d in everyone.doctors if d.id == doctor.id] == [True]


# -- weekly plans and breaks ---------------------------------------------------------------------


async def test_a_weekly_plan_gives_hours_and_breaks_and_a_break_is_never_booked(client: Client):
    doctor = await client.doctor(daily_capacity=20, slot_minutes=30)
    day = future_date(40)
    plan = await set_plan(
        client,
        doctor.id,
        future_date(30),
        doctor_pb2.PlanDay(
            weekday=weekday_of(day),
            present=True,
            day_start="10:00",
            day_end="14:00",
            breaks=[doctor_pb2.TimeRange(start="12:00", end="12:30")],
        ),
    )
    assert plan.days[0].day_start == "10:00"
    view = await client.doctor_day(doctor.id, day)
    assert (view.day_start, view.day_end, view.hours_source) == (
        "10:00",
        "14:00",
        doctor_pb2.HOURS_SOURCE_WEEKLY_PLAN,
    )
    assert [(b.start, b.end) for b in view.breaks] == [("12:00", "12:30")]
    assert view.free_times == ["10:00", "10:30", "11:00", "11:30", "12:30", "13:00", "13:30"]
    into_break = [
        await client.settled(
            (await book(client, patient(), day, doctor.id, start_time=t, duration_minutes=30)).id
        )
        for t in ("11:45", "12:00", "12:15")
    ]
    assert {(b.status, b.rejection_reason) for b in into_break} == {
        (c.BOOKING_STATUS_REJECTED, R.Value("REJECTION_REASON_SLOT_UNAVAILABLE"))
    }
    after = await client.settled(
        (await book(client, patient(), day, doctor.id, start_time="12:30", duration_minutes=30)).id
    )
    assert after.status == c.BOOKING_STATUS_CONFIRMED
    before_plan = await client.doctor_day(doctor.id, future_date(20))
    assert before_plan.hours_source == doctor_pb2.HOURS_SOURCE_DEFAULTS and not before_plan.breaks


async def test_a_plan_day_off_refuses_bookings_and_availability_overrides_it(client: Client):
    doctor = await client.doctor()
    day = future_date(50)
    await set_plan(
        client, doctor.id, future_date(45), doctor_pb2.PlanDay(weekday=weekday_of(day), present=False)
    )
    refused = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert refused.rejection_reason == R.Value("REJECTION_REASON_DOCTOR_UNAVAILABLE")
    req = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=True, note="extra day")
    await client.doctors.SetAvailability(req, metadata=STAFF)
    taken = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert taken.status == c.BOOKING_STATUS_CONFIRMED


async def test_bad_plans_name_each_field_and_store_nothing(client: Client):
    doctor = await client.doctor()
    day = future_date(60)
    fields = await invalid(
        client.doctors.SetWeeklyPlan(
            doctor_pb2.SetWeeklyPlanRequest(
                doctor_id=doctor.id,
                effective_from="2020-01-01",
                days=[
                    doctor_pb2.PlanDay(
                        weekday=weekday_of(day),
                        present=True,
                        breaks=[doctor_pb2.TimeRange(start="13:00", end="12:00")],
                    )
                ],
            ),
            metadata=STAFF,
        )
    )
    assert set(fields) == {"effective_from", "days[0].breaks[0].end"}
    outside = await invalid(
        client.doctors.SetWeeklyPlan(
            doctor_pb2.SetWeeklyPlanRequest(
                doctor_id=doctor.id,
                effective_from=future_date(1),
                days=[
                    doctor_pb2.PlanDay(
                        weekday=1, present=True, breaks=[doctor_pb2.TimeRange(start="18:00", end="19:00")]
                    )
                ],
            ),
            metadata=STAFF,
        )
    )
    assert set(outside) == {"days[0].breaks[0]"}
    assert (await client.doctor_day(doctor.id, day)).hours_source == doctor_pb2.HOURS_SOURCE_DEFAULTS
    assert (await get_doctor(client, doctor.id)).revision == doctor.revision


async def test_today_offers_no_time_already_past(client: Client):
    doctor = await client.doctor(day_start="00:00", day_end="23:59", daily_capacity=200)
    today = today_ist().isoformat()
    offered = (await client.doctor_day(doctor.id, today)).free_times
    now = datetime.now(IST)
    if offered:
        assert offered[0] > f"{now:%H:%M}"
    assert len(offered) <= (24 * 60 - (now.hour * 60 + now.minute)) // 15 + 1


# -- leave and the absent doctor -----------------------------------------------------------------


def _doctor_unavailable_events(b: c.Booking, day: str) -> list[c.BookingEvent]:
    return [e for e in b.history if e.type == c.EVENT_TYPE_DOCTOR_UNAVAILABLE and e.about_date == day]


async def test_leave_answers_confirmed_bookings_and_each_gets_one_event(client: Client, servers):
    doctor = await client.doctor()
    first, last = future_date(70), future_date(72)
    confirmed = [
        await client.settled(
            (await book(client, patient(), d, doctor.id, start_time=t, duration_minutes=15)).id
        )
        for d, t in ((first, "09:00"), (future_date(71), "10:00"), (last, "11:00"))
    ]
    other_day = await client.settled((await book(client, patient(), future_date(73), doctor.id)).id)
    cancelled = await client.settled((await book(client, patient(), first, doctor.id)).id)
    await client.cancel(cancelled.id)
    await wait_for(
        lambda: _async_released(client, cancelled.id), what="the cancelled booking's places to go back"
    )
    reply = await set_leave(client, doctor.id, first, last, note="conference")
    assert [d.date for d in reply.days] == [first, future_date(71), last]
    assert all(
        d.on_leave and not d.present and d.hours_source == doctor_pb2.HOURS_SOURCE_LEAVE for d in reply.days
    )
    assert sorted((a.booking_id, a.date, a.start_time, a.token) for a in reply.affected_bookings) == sorted(
        (b.id, b.appointment_date, b.start_time, b.token) for b in confirmed
    )

    async def recorded():
        got = [await client.get(b.id) for b in confirmed]
        return got if all(_doctor_unavailable_events(b, b.appointment_date) for b in got) else None

    for b in await wait_for(recorded, what="DOCTOR_UNAVAILABLE on every affected booking"):
        (event,) = _doctor_unavailable_events(b, b.appointment_date)
        assert (event.actor.sub, event.actor.role) == ("desk-1", "staff")  # the desk that set the leave
        assert b.status == c.BOOKING_STATUS_CONFIRMED  # staff move or cancel it; it keeps its places
    assert not any(
        e.type == c.EVENT_TYPE_DOCTOR_UNAVAILABLE for e in (await client.get(other_day.id)).history
    )
    refused = await client.settled((await book(client, patient(), future_date(71), doctor.id)).id)
    assert refused.rejection_reason == R.Value("REJECTION_REASON_DOCTOR_UNAVAILABLE")

    # The desk marks the same leave again, and the saga message is delivered again under new ids
    # (past JetStream's de-duplication): still one event per booking and day.
    again = await set_leave(client, doctor.id, first, last, note="conference")
    assert len(again.affected_bookings) == 3
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    try:
        for b in confirmed:
            message = saga_pb2.DoctorUnavailable(
                booking_id=b.id, doctor_id=doctor.id, date=b.appointment_date
            )
            for copy in range(3):
                await js.publish(
                    subjects.saga_subject(subjects.DOCTOR_UNAVAILABLE, b.id),
                    message.SerializeToString(),
                    headers={"Nats-Msg-Id": uid(f"dup{copy}")},
                )

        async def drained():
            info = await js.consumer_info(subjects.SAGA_STREAM, subjects.BOOKING_CONSUMER)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(drained, what="booking_svc to take the copies")
    finally:
        await nc.close()
    for b in confirmed:
        assert len(_doctor_unavailable_events(await client.get(b.id), b.appointment_date)) == 1


async def test_marking_a_day_absent_answers_its_bookings(client: Client):
    doctor = await client.doctor()
    day = future_date(80)
    held = await client.settled((await book(client, patient(), day, doctor.id)).id)
    req = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=False, note="ill")
    reply = await client.doctors.SetAvailability(req, metadata=STAFF)
    assert [(a.booking_id, a.token) for a in reply.affected_bookings] == [(held.id, held.token)]

    async def recorded():
        return _doctor_unavailable_events(await client.get(held.id), day)

    assert len(await wait_for(recorded, what="DOCTOR_UNAVAILABLE")) == 1

    async def told():  # notification_svc tells the patient (off the saga: its deliveries say so)
        found = await client.deliveries(held.id)
        return [d for d in found if (d.kind, d.channel) == ("doctor-unavailable", "app")]

    assert len(await wait_for(told, what="the patient to be notified")) == 1
    present = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=True)
    assert not (await client.doctors.SetAvailability(present, metadata=STAFF)).affected_bookings


async def test_bad_leave_is_invalid_and_stores_nothing(client: Client):
    doctor = await client.doctor()
    first = future_date(90)
    fields = await invalid(
        client.doctors.SetLeave(
            doctor_pb2.SetLeaveRequest(
                doctor_id=doctor.id, note="n" * 501, **{"from": first, "to": future_date(89)}
            ),
            metadata=STAFF,
        )
    )
    assert set(fields) == {"note", "to"}
    assert not (await client.doctor_day(doctor.id, first)).on_leave


# -- FindSlots -----------------------------------------------------------------------------------


async def test_find_slots_across_doctors_in_time_order_without_absent_or_retired(client: Client):
    service = "ultrasound"
    early = await client.doctor(service_ids=[service], day_start="08:00", slot_minutes=30)
    late = await client.doctor(service_ids=[service], day_start="08:30", slot_minutes=30)
    absent = await client.doctor(service_ids=[service], day_start="07:00")
    retired = await client.doctor(service_ids=[service], day_start="07:00")
    await update_doctor(client, retired.id, ["retired"], retired=True)
    day = future_date(100)
    await client.doctors.SetAvailability(
        doctor_pb2.SetAvailabilityRequest(doctor_id=absent.id, date=day, present=False), metadata=STAFF
    )
    taken = await client.settled(
        (
            await client.create(
                patient(),
                [service],
                appointment_date=day,
                doctor_id=early.id,
                start_time="08:00",
                duration_minutes=30,
            )
        ).id
    )
    assert taken.status == c.BOOKING_STATUS_CONFIRMED
    req = doctor_pb2.FindSlotsRequest(
        service_id=service, date_from=day, date_to=day, duration_minutes=30, limit=100
    )
    slots = (await client.doctors.FindSlots(req, metadata=Client.auth(uid("p"), "patient"))).slots
    ours = [
        (s.start_time, s.doctor_id)
        for s in slots
        if s.doctor_id in {early.id, late.id, absent.id, retired.id}
    ]
    assert set(ours[:2]) == {("08:30", early.id), ("08:30", late.id)}  # 08:00 is taken
    codes = {early.id: early.code.lower(), late.id: late.code.lower()}
    assert ours == sorted(ours, key=lambda s: (s[0], codes[s[1]]))  # by time, then doctor code
    assert {d for _, d in ours} == {early.id, late.id}
    times = [(s.date, s.start_time) for s in slots]
    assert times == sorted(times)
    limited = await client.doctors.FindSlots(
        doctor_pb2.FindSlotsRequest(service_id=service, date_from=day, limit=2), metadata=STAFF
    )
    assert len(limited.slots) == 2


async def test_find_slots_refuses_more_than_31_days_and_bad_fields(client: Client):
    start = today_ist() + timedelta(days=1)
    fields = await invalid(
        client.doctors.FindSlots(
            doctor_pb2.FindSlotsRequest(
                service_id="gen-consult",
                date_from=start.isoformat(),
                date_to=(start + timedelta(days=32)).isoformat(),
                duration_minutes=7,
            ),
            metadata=STAFF,
        )
    )
    assert set(fields) == {"date_to", "duration_minutes"}
    assert set(await invalid(client.doctors.FindSlots(doctor_pb2.FindSlotsRequest(), metadata=STAFF))) == {
        "service_id"
    }


async def _async_released(client: Client, booking_id: str) -> bool:
    b = await client.get(booking_id)
    return any(e.type == c.EVENT_TYPE_PLACES_RELEASED for e in b.history)


async def test_booking_svc_sees_a_doctors_new_services_within_its_cache_time(client: Client):
    doctor = await client.doctor()
    day = future_date()
    first = await client.settled((await book(client, patient(), day, doctor.id)).id)  # booking_svc read it
    assert first.status == c.BOOKING_STATUS_CONFIRMED
    await update_doctor(client, doctor.id, ["service_ids"], service_ids=["gen-consult", "blood-panel"])

    async def accepted():
        try:
            return await client.create(patient(), ["blood-panel"], appointment_date=day, doctor_id=doctor.id)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # the old services, for a moment
            return None

    booking = await wait_for(accepted, timeout_s=10, what="booking_svc to see the new services")
    assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED


async def test_leave_racing_bookings_answers_exactly_the_ones_that_got_the_day(client: Client):
    """Forty bookings race a SetLeave for their date: each either got its token before the leave
    (then it is in affectedBookings and gets one DOCTOR_UNAVAILABLE) or is refused; none slips by."""
    doctor = await client.doctor(daily_capacity=50)
    day = future_date(130)

    async def trickle(i: int) -> c.Booking:
        await asyncio.sleep(i * 0.005)  # spread out, so the leave lands among them
        return await book(client, patient(), day, doctor.id)

    async def leave_soon():
        async def some_booked():  # the first bookings hold tokens; the rest are on their way
            return (await client.doctor_day(doctor.id, day)).booked >= 2

        await wait_for(some_booked, timeout_s=10, what="the first bookings to hold tokens")
        return await set_leave(client, doctor.id, day, day, note="called away")

    *made, reply = await asyncio.gather(*(trickle(i) for i in range(40)), leave_soon())
    done = await asyncio.gather(*(client.settled(b.id) for b in made))
    confirmed = {b.id for b in done if b.status == c.BOOKING_STATUS_CONFIRMED}
    refused = [b for b in done if b.status == c.BOOKING_STATUS_REJECTED]
    assert {b.rejection_reason for b in refused} <= {R.Value("REJECTION_REASON_DOCTOR_UNAVAILABLE")}
    assert len(confirmed) + len(refused) == 40 and len(confirmed) >= 2
    assert {a.booking_id for a in reply.affected_bookings} == confirmed

    async def all_told():
        got = [await client.get(b) for b in confirmed]
        return got if all(_doctor_unavailable_events(b, day) for b in got) else None

    for b in await wait_for(all_told, what="DOCTOR_UNAVAILABLE on every confirmed booking"):
        assert len(_doctor_unavailable_events(b, day)) == 1


async def test_concurrent_edits_of_different_fields_all_land(client: Client):
    doctor = await client.doctor()
    await asyncio.gather(
        update_doctor(client, doctor.id, ["name"], name="Dr A"),
        update_doctor(client, doctor.id, ["specialty"], specialty="ent"),
        update_doctor(client, doctor.id, ["slot_minutes"], slot_minutes=20),
        update_doctor(client, doctor.id, ["daily_capacity"], daily_capacity=7),
    )
    got = await get_doctor(client, doctor.id)
    assert (got.name, got.specialty, got.slot_minutes, got.daily_capacity) == ("Dr A", "ent", 20, 7)
    assert got.revision == doctor.revision + 4
    asha = await register(client)
    await asyncio.gather(
        update_patient(client, asha.id, ["name"], name="Asha B"),
        update_patient(client, asha.id, ["contact"], contact=c.ContactConsent(whatsapp=True)),
        update_patient(client, asha.id, ["date_of_birth"], date_of_birth="1991-01-01"),
    )
    req = patient_pb2.GetPatientRequest(patient_id=asha.id)
    p = (await client.patients.GetPatient(req, metadata=STAFF)).patient
    assert (p.name, p.contact.whatsapp, p.date_of_birth, p.phone) == (
        "Asha B",
        True,
        "1991-01-01",
        asha.phone,
    )


async def test_moves_respect_retirement_leave_and_breaks(client: Client):
    """A reschedule is judged by the resolved day too: onto a retired doctor or a day of leave it is
    refused DOCTOR_UNAVAILABLE, into a break SLOT_UNAVAILABLE; the booking keeps what it had."""
    from tests.integration.test_reschedule import answered, reschedule

    doctor, retired = await client.doctor(), await client.doctor()
    day, leave_day, plan_day = future_date(140), future_date(141), future_date(142)
    b = await client.settled((await book(client, patient(), day, doctor.id, start_time="10:00")).id)
    await update_doctor(client, retired.id, ["retired"], retired=True)
    await set_leave(client, doctor.id, leave_day, leave_day)
    lunch = [doctor_pb2.TimeRange(start="13:00", end="14:00")]
    await set_plan(
        client,
        doctor.id,
        plan_day,
        doctor_pb2.PlanDay(weekday=weekday_of(plan_day), present=True, breaks=lunch),
    )
    moves = [
        ({"doctor_id": retired.id}, "REJECTION_REASON_DOCTOR_UNAVAILABLE"),
        ({"appointment_date": leave_day}, "REJECTION_REASON_DOCTOR_UNAVAILABLE"),
        ({"appointment_date": plan_day, "start_time": "13:15"}, "REJECTION_REASON_SLOT_UNAVAILABLE"),
    ]
    for number, (change, reason) in enumerate(moves, start=1):
        await reschedule(client, b.id, **change)
        kept = await answered(client, b.id, moves=number)
        assert kept.history[-1].type == c.EVENT_TYPE_RESCHEDULE_REFUSED
        assert kept.history[-1].reason == R.Value(reason)
        assert (kept.appointment_date, kept.doctor_id, kept.start_time, kept.token) == (
            day,
            doctor.id,
            "10:00",
            b.token,
        )
    await reschedule(client, b.id, appointment_date=plan_day, start_time="14:00")
    moved = await answered(client, b.id, moves=len(moves) + 1)
    assert (moved.history[-1].type, moved.appointment_date, moved.start_time) == (
        c.EVENT_TYPE_BOOKING_RESCHEDULED,
        plan_day,
        "14:00",
    )
