"""Issue 10: patients, doctors, tokens and time intervals in the saga, through the gateway.

Every rule that hands out something scarce (a token, an interval, a patient per phone) is raced by
many concurrent callers here, and the winners are counted.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from clinic.v1 import booking_pb2, doctor_pb2, patient_pb2
from clinic.v1 import common_pb2 as c
from discount_svc.store import used_key
from tests.conftest import TEST_QUOTA
from tests.harness import Client, birthday_patient, future_date, patient, today_ist, uid, wait_for

R = c.RejectionReason


def bad_fields(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            return {v.field: v.description for v in request.field_violations}
    return {}


async def book(client: Client, who: c.Patient, day: str, doctor_id: str, **kw) -> c.Booking:
    return await client.create(who, ["gen-consult"], appointment_date=day, doctor_id=doctor_id, **kw)


async def test_thirty_concurrent_bookings_for_ten_tokens_confirm_exactly_ten(client: Client):
    """Seed 003: tokens 1..10 once each; the other 20 CAPACITY_UNAVAILABLE; the day shows it."""
    doctor = await client.doctor(daily_capacity=10)
    day = future_date()
    made = await asyncio.gather(*(book(client, patient(), day, doctor.id) for _ in range(30)))
    done = await asyncio.gather(*(client.settled(b.id) for b in made))
    confirmed = [b for b in done if b.status == c.BOOKING_STATUS_CONFIRMED]
    rejected = [b for b in done if b.status == c.BOOKING_STATUS_REJECTED]
    assert sorted(b.token for b in confirmed) == list(range(1, 11))
    assert len(rejected) == 20
    assert {b.rejection_reason for b in rejected} == {R.Value("REJECTION_REASON_CAPACITY_UNAVAILABLE")}
    assert all(b.token == 0 for b in rejected)
    view = await client.doctor_day(doctor.id, day)
    assert (view.capacity, view.booked, view.remaining) == (10, 10, 0)


async def test_cancelling_frees_the_token_and_the_lowest_free_number_is_taken_next(client: Client):
    doctor = await client.doctor(daily_capacity=3)
    day = future_date()
    first, second, third = [
        await client.settled((await book(client, patient(), day, doctor.id)).id) for _ in range(3)
    ]
    assert [first.token, second.token, third.token] == [1, 2, 3]
    await client.cancel(second.id)
    await wait_for(lambda: _released(client, second.id), what="places released")
    assert (await client.doctor_day(doctor.id, day)).remaining == 1
    again = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert (again.status, again.token) == (c.BOOKING_STATUS_CONFIRMED, 2)


async def test_overlapping_intervals_under_concurrency_exactly_one_wins(client: Client):
    doctor = await client.doctor(daily_capacity=50)
    day = future_date()
    # Every interval [start, start + 30) contains 10:00, so any two of them overlap.
    starts = ["10:00", "09:45", "09:31", "09:50", "10:00", "09:35", "09:59", "09:40"]
    made = await asyncio.gather(
        *(book(client, patient(), day, doctor.id, start_time=t, duration_minutes=30) for t in starts)
    )
    done = await asyncio.gather(*(client.settled(b.id) for b in made))
    winners = [b for b in done if b.status == c.BOOKING_STATUS_CONFIRMED]
    assert len(winners) == 1
    assert {b.rejection_reason for b in done if b not in winners} == {
        R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")
    }
    view = await client.doctor_day(doctor.id, day)
    taken = minutes(winners[0].start_time)
    free = [minutes(t) for t in view.free_times]
    assert view.booked == 1 and free  # no free slot overlaps the winner's interval
    assert not [t for t in free if t < taken + 30 and taken < t + doctor.slot_minutes]
    blocked = range((taken - 540) // 15, (taken + 29 - 540) // 15 + 1)  # grid slots the winner overlaps
    assert len(free) == 32 - len(blocked)  # 09:00-17:00 in 15-minute slots
    # A neighbouring interval that only touches the winner's still fits.
    after = f"{(taken + 30) // 60:02d}:{(taken + 30) % 60:02d}"
    touching = await client.settled((await book(client, patient(), day, doctor.id, start_time=after)).id)
    assert touching.status == c.BOOKING_STATUS_CONFIRMED and touching.duration_minutes == doctor.slot_minutes


async def test_a_time_outside_the_doctors_hours_is_refused(client: Client):
    doctor = await client.doctor(day_start="09:00", day_end="12:00")
    day = future_date()
    late = await client.settled((await book(client, patient(), day, doctor.id, start_time="11:50")).id)
    assert late.rejection_reason == R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")
    early = await client.settled((await book(client, patient(), day, doctor.id, start_time="08:45")).id)
    assert early.rejection_reason == R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")


async def test_an_absent_doctor_refuses_new_bookings_and_keeps_confirmed_ones(client: Client):
    doctor = await client.doctor()
    day = future_date()
    kept = await client.settled((await book(client, patient(), day, doctor.id)).id)
    staff = client.auth("desk-1", "staff")
    await client.doctors.SetAvailability(
        doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=False, note="conference"),
        metadata=staff,
    )
    refused = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert refused.rejection_reason == R.Value("REJECTION_REASON_DOCTOR_UNAVAILABLE")
    assert (await client.get(kept.id)).status == c.BOOKING_STATUS_CONFIRMED
    view = await client.doctor_day(doctor.id, day)
    assert (view.present, view.note, view.remaining, list(view.free_times)) == (False, "conference", 0, [])
    # The last write for a date stands: present again, with a smaller day.
    await client.doctors.SetAvailability(
        doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, day_start="14:00", daily_capacity=2),
        metadata=staff,
    )
    view = await client.doctor_day(doctor.id, day)
    assert (view.present, view.capacity, view.remaining, view.day_start) == (True, 2, 1, "14:00")
    assert view.free_times[0] == "14:00"


async def test_an_r2_refusal_after_places_were_reserved_gives_them_back(client: Client, redis):
    doctor = await client.doctor(daily_capacity=1)
    day = future_date()
    await redis.set(used_key(today_ist().isoformat()), TEST_QUOTA)
    try:
        refused = await client.settled((await book(client, birthday_patient(), day, doctor.id)).id)
    finally:
        await redis.set(used_key(today_ist().isoformat()), 0)
    assert refused.rejection_reason == R.Value("REJECTION_REASON_QUOTA_EXHAUSTED")
    kinds = [c.EventType.Name(e.type) for e in refused.history]
    assert kinds.index("EVENT_TYPE_PLACES_RESERVED") < kinds.index("EVENT_TYPE_DISCOUNT_REJECTED")
    assert kinds.count("EVENT_TYPE_PLACES_RELEASED") == 1
    assert (await client.doctor_day(doctor.id, day)).remaining == 1
    taken = await client.settled((await book(client, patient(), day, doctor.id)).id)
    assert (taken.status, taken.token) == (c.BOOKING_STATUS_CONFIRMED, 1)


async def test_duplicate_phone_under_concurrency_is_one_patient(client: Client):
    staff = client.auth("desk-1", "staff")
    digits = "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))
    spellings = [
        digits,
        f"+91 {digits[:5]} {digits[5:]}",
        f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
        f"0{digits}",
    ]

    async def register(i: int) -> patient_pb2.RegisterPatientResponse:
        req = patient_pb2.RegisterPatientRequest(
            name=f"Asha {i}", phone=spellings[i % 4], gender=c.GENDER_FEMALE, date_of_birth="1990-11-22"
        )
        return await client.patients.RegisterPatient(req, metadata=staff, timeout=10)

    answers = await asyncio.gather(*(register(i) for i in range(20)))
    assert len({a.patient.id for a in answers}) == 1
    assert sum(a.created for a in answers) == 1
    winner = next(a.patient for a in answers if a.created)
    assert all(a.patient == winner for a in answers)  # the existing patient, unchanged
    assert winner.phone == f"+91{digits}"
    found = await client.patients.FindPatients(
        patient_pb2.FindPatientsRequest(phone=f"{digits[:5]}-{digits[5:]}"), metadata=staff
    )
    assert [p.id for p in found.patients] == [winner.id]


async def test_a_registered_patient_books_by_id_alone(client: Client):
    staff = client.auth("desk-1", "staff")
    registered = (
        await client.patients.RegisterPatient(
            patient_pb2.RegisterPatientRequest(
                name="Ravi Kumar",
                phone=uid("")[-10:].translate(str.maketrans("abcdef", "123456")),
                gender=c.GENDER_MALE,
                date_of_birth="1980-01-31",
                email="Ravi@Example.com",
            ),
            metadata=staff,
        )
    ).patient
    assert registered.email == "ravi@example.com"
    req = booking_pb2.CreateBookingRequest(
        patient=c.Patient(id=registered.id), service_ids=["psa-test"], appointment_date=future_date()
    )
    own = client.auth(registered.id, "patient")
    booking = (await client.bookings.CreateBooking(req, metadata=own, timeout=10)).booking
    assert (booking.patient.name, booking.patient.gender) == ("Ravi Kumar", c.GENDER_MALE)
    assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
    # Another patient cannot book (or read) in a registered patient's name.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await client.bookings.CreateBooking(req, metadata=client.auth(uid("p"), "patient"), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    unknown = booking_pb2.CreateBookingRequest(patient=c.Patient(id=uid("p")), service_ids=["gen-consult"])
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.bookings.CreateBooking(unknown, metadata=client.auth(), timeout=10)
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(missing.value)) == {"patient.id"}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"doctor_id": "d-nobody"}, {"doctor_id"}),
        ({"service_ids": ["gen-consult", "ultrasound"]}, {"service_ids[1]"}),
        ({"start_time": "9:30"}, {"start_time"}),
        ({"start_time": "25:00"}, {"start_time"}),
        ({"start_time": "10:00", "duration_minutes": 10}, {"duration_minutes"}),
        ({"start_time": "10:00", "duration_minutes": 481}, {"duration_minutes"}),
        ({"doctor_id": "", "start_time": "10:00"}, {"start_time"}),
        ({"doctor_id": "d" * 65}, {"doctor_id"}),
    ],
)
async def test_bad_doctor_fields_are_invalid_arguments_and_nothing_is_stored(
    client: Client, redis, change, fields
):
    doctor = await client.doctor()
    day = future_date()
    who = patient()
    request = {
        "patient": who,
        "service_ids": ["gen-consult"],
        "appointment_date": day,
        "doctor_id": doctor.id,
    }
    request.update(change)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.CreateBooking(
            booking_pb2.CreateBookingRequest(**request), metadata=client.auth(), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(caught.value)) == fields
    assert await redis.zcard(f"bookings:patient:{who.id}") == 0
    assert (await client.doctor_day(doctor.id, day)).booked == 0


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"phone": "call me"}, {"phone"}),
        ({"phone": "12345"}, {"phone"}),
        ({"phone": ""}, {"phone"}),
        ({"name": "x" * 201}, {"name"}),
        ({"email": "not-an-email"}, {"email"}),
        ({"date_of_birth": "1990-02-30", "gender": c.GENDER_UNSPECIFIED}, {"date_of_birth", "gender"}),
    ],
)
async def test_bad_registrations_name_each_field_and_store_nothing(client: Client, redis, change, fields):
    request = {
        "name": "Asha",
        "phone": "98450 12345",
        "gender": c.GENDER_FEMALE,
        "date_of_birth": "1990-01-01",
    }
    request.update(change)
    before = await redis.dbsize()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.patients.RegisterPatient(
            patient_pb2.RegisterPatientRequest(**request), metadata=client.auth("desk-1", "staff")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(caught.value)) == fields
    if "date_of_birth" in fields:
        assert "not a real date" in bad_fields(caught.value)["date_of_birth"]
    assert await redis.dbsize() == before


async def test_doctor_codes_are_unique_and_bad_doctors_are_refused(client: Client):
    doctor = await client.doctor()
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await client.doctors.CreateDoctor(
            doctor_pb2.CreateDoctorRequest(code=doctor.code, name="Other", service_ids=["gen-consult"]),
            metadata=client.auth(),
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.doctors.CreateDoctor(
            doctor_pb2.CreateDoctorRequest(
                code="bad code",
                name="",
                service_ids=["nope"],
                day_start="18:00",
                day_end="09:00",
                slot_minutes=5,
            ),
            metadata=client.auth(),
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(bad.value)) == {"code", "name", "service_ids[0]", "day_end", "slot_minutes"}
    listed = await client.doctors.ListDoctors(
        doctor_pb2.ListDoctorsRequest(service_id="gen-consult"), metadata=client.auth()
    )
    assert doctor.id in {d.id for d in listed.doctors}


async def test_staff_list_a_doctors_day_by_status(client: Client):
    doctor = await client.doctor(daily_capacity=2)
    day = future_date()
    made = [await client.settled((await book(client, patient(), day, doctor.id)).id) for _ in range(3)]
    staff = client.auth("desk-1", "staff")
    req = booking_pb2.ListBookingsRequest(
        doctor_id=doctor.id, date=day, status=c.BOOKING_STATUS_CONFIRMED, page_size=1
    )
    first = await client.bookings.ListBookings(req, metadata=staff)
    req.page_token = first.next_page_token
    second = await client.bookings.ListBookings(req, metadata=staff)
    confirmed = {b.id for b in made if b.status == c.BOOKING_STATUS_CONFIRMED}
    assert {b.id for b in [*first.bookings, *second.bookings]} == confirmed and len(confirmed) == 2
    assert second.next_page_token == ""
    by_date = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(date=day, status=c.BOOKING_STATUS_REJECTED, page_size=100),
        metadata=staff,
    )
    # Other tests may book on the same (random) date: every answer matches, ours are among them.
    assert {(b.appointment_date, b.status) for b in by_date.bookings} == {(day, c.BOOKING_STATUS_REJECTED)}
    rejected = {b.id for b in made if b.status == c.BOOKING_STATUS_REJECTED}
    assert len(rejected) == 1 and rejected <= {b.id for b in by_date.bookings}
    with pytest.raises(grpc.aio.AioRpcError) as denied:  # a patient may not list a doctor's day
        await client.bookings.ListBookings(
            booking_pb2.ListBookingsRequest(doctor_id=doctor.id), metadata=client.auth(uid("p"), "patient")
        )
    assert denied.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_fields(denied.value)) == {"patient_id"}


def minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


async def _released(client: Client, booking_id: str) -> bool:
    return any(e.type == c.EVENT_TYPE_PLACES_RELEASED for e in (await client.get(booking_id)).history)


async def test_registry_logs_name_no_phone_no_email_no_birth_date(client: Client, system):
    phone = "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))
    req = patient_pb2.RegisterPatientRequest(
        name="Zenobia Quillfeather",
        phone=phone,
        email="zenobia.q@example.com",
        gender=c.GENDER_FEMALE,
        date_of_birth="1977-07-17",
    )
    made = (await client.patients.RegisterPatient(req, metadata=client.auth("desk-1", "staff"))).patient
    booking = await client.create(c.Patient(id=made.id), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)

    def logged() -> str:
        return system.log_tail("schedule_svc", 10**7) + system.log_tail("booking_svc", 10**7)

    await wait_for(lambda: _async(made.id in logged()), what="the registration in schedule_svc's log")
    text = logged()
    for secret in ("Zenobia", "Quillfeather", phone, "zenobia.q@example.com", "1977-07-17"):
        assert secret not in text, secret


async def _async(value):
    return value
