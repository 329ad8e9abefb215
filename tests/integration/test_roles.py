"""The role matrix for every rpc of the registry and doctors, and the front desk's (staff) reach
into bookings: patient (own data only), staff (front desk), admin (everything). Each denial is
the exact code, and a denied write leaves nothing behind."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clinic.v1 import admin_pb2, booking_pb2, doctor_pb2, notification_pb2, patient_pb2
from clinic.v1 import common_pb2 as c
from tests.harness import Client, future_date, patient, uid

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED


async def _code(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return OK


def _phone() -> str:
    return "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))


@pytest.fixture(scope="module")
async def registered(client: Client) -> tuple[c.Patient, c.Patient, doctor_pb2.Doctor]:
    staff = Client.auth("desk-1", "staff")

    async def register(name: str) -> c.Patient:
        req = patient_pb2.RegisterPatientRequest(
            name=name, phone=_phone(), gender=c.GENDER_FEMALE, date_of_birth="1991-05-05"
        )
        return (await client.patients.RegisterPatient(req, metadata=staff)).patient

    return await register("Alice"), await register("Bob"), await client.doctor()


async def test_registry_and_doctor_rpcs_by_role(client: Client, registered):
    alice, bob, doctor = registered
    day = future_date()

    def calls(md, patient_id: str) -> dict:
        p, d = client.patients, client.doctors
        return {
            "RegisterPatient": p.RegisterPatient(
                patient_pb2.RegisterPatientRequest(
                    name="New", phone=_phone(), gender=c.GENDER_MALE, date_of_birth="1970-01-01"
                ),
                metadata=md,
            ),
            "GetPatient": p.GetPatient(patient_pb2.GetPatientRequest(patient_id=patient_id), metadata=md),
            "FindPatients": p.FindPatients(patient_pb2.FindPatientsRequest(phone=alice.phone), metadata=md),
            "CreateDoctor": d.CreateDoctor(
                doctor_pb2.CreateDoctorRequest(code=uid("DR"), name="Dr New", service_ids=["gen-consult"]),
                metadata=md,
            ),
            "ListDoctors": d.ListDoctors(doctor_pb2.ListDoctorsRequest(), metadata=md),
            "GetDoctor": d.GetDoctor(doctor_pb2.GetDoctorRequest(doctor_id=doctor.id), metadata=md),
            "SetAvailability": d.SetAvailability(
                doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, note="x"), metadata=md
            ),
            "GetDoctorDay": d.GetDoctorDay(
                doctor_pb2.GetDoctorDayRequest(doctor_id=doctor.id, date=day), metadata=md
            ),
            "UpdatePatient": p.UpdatePatient(
                patient_pb2.UpdatePatientRequest(
                    patient_id=patient_id,
                    update_mask=FieldMask(paths=["contact"]),
                    contact=c.ContactConsent(sms=True),
                ),
                metadata=md,
            ),
            "UpdateDoctor": d.UpdateDoctor(
                doctor_pb2.UpdateDoctorRequest(
                    doctor_id=doctor.id, update_mask=FieldMask(paths=["name"]), name="Dr Test"
                ),
                metadata=md,
            ),
            "SetWeeklyPlan": d.SetWeeklyPlan(
                doctor_pb2.SetWeeklyPlanRequest(
                    doctor_id=doctor.id,
                    effective_from=future_date(300),
                    days=[doctor_pb2.PlanDay(weekday=doctor_pb2.WEEKDAY_SUNDAY, present=False)],
                ),
                metadata=md,
            ),
            "SetLeave": d.SetLeave(
                doctor_pb2.SetLeaveRequest(
                    doctor_id=doctor.id, note="x", **{"from": future_date(301), "to": future_date(301)}
                ),
                metadata=md,
            ),
            "FindSlots": d.FindSlots(
                doctor_pb2.FindSlotsRequest(service_id="gen-consult", date_from=day, limit=1), metadata=md
            ),
        }

    async def run(md, patient_id: str) -> dict[str, grpc.StatusCode]:
        return {name: await _code(call) for name, call in calls(md, patient_id).items()}

    as_alice = Client.auth(alice.id, "patient")
    assert await run(as_alice, alice.id) == {
        "RegisterPatient": DENIED,
        "GetPatient": OK,
        "FindPatients": DENIED,
        "CreateDoctor": DENIED,
        "ListDoctors": OK,
        "GetDoctor": OK,
        "SetAvailability": DENIED,
        "GetDoctorDay": OK,
        "UpdatePatient": OK,
        "UpdateDoctor": DENIED,
        "SetWeeklyPlan": DENIED,
        "SetLeave": DENIED,
        "FindSlots": OK,
    }
    as_alice_on_bob = await run(as_alice, bob.id)
    assert (as_alice_on_bob["GetPatient"], as_alice_on_bob["UpdatePatient"]) == (DENIED, DENIED)
    staff = await run(Client.auth("desk-1", "staff"), bob.id)
    assert staff == {**{k: OK for k in staff}, "CreateDoctor": DENIED, "UpdateDoctor": DENIED}
    admin = await run(Client.auth(), bob.id)
    assert admin == {k: OK for k in admin}


async def test_denied_writes_store_nothing(client: Client, redis):
    phone = _phone()
    req = patient_pb2.RegisterPatientRequest(
        name="Eve", phone=phone, gender=c.GENDER_FEMALE, date_of_birth="1990-01-01"
    )
    assert (
        await _code(client.patients.RegisterPatient(req, metadata=Client.auth(uid("p"), "patient"))) == DENIED
    )
    assert not await redis.exists(f"{{registry}}:phone:+91{phone}")
    code = uid("DR")
    create = doctor_pb2.CreateDoctorRequest(code=code, name="Dr Eve", service_ids=["gen-consult"])
    assert await _code(client.doctors.CreateDoctor(create, metadata=Client.auth("desk-1", "staff"))) == DENIED
    assert not await redis.exists(f"{{doctors}}:code:{code.lower()}")


async def test_staff_act_for_any_patient_but_not_on_the_quota(client: Client):
    staff = Client.auth("desk-1", "staff")
    who = patient(uid("walk-in"))
    req = booking_pb2.CreateBookingRequest(
        patient=who, service_ids=["gen-consult"], appointment_date=future_date()
    )
    booking = (await client.bookings.CreateBooking(req, metadata=staff)).booking
    assert (
        await client.bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking.id), metadata=staff)
    ).booking.id == booking.id
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=who.id), metadata=staff
    )
    assert [b.id for b in listed.bookings] == [booking.id]
    watch = client.notifications.WatchBooking(
        notification_pb2.WatchBookingRequest(booking_id=booking.id), metadata=staff, timeout=10
    )
    sequences = [item.event.sequence async for item in watch]
    assert sequences == list(range(1, len(sequences) + 1)) and sequences
    cancelled = await client.bookings.CancelBooking(
        booking_pb2.CancelBookingRequest(booking_id=booking.id, reason="desk"), metadata=staff
    )
    assert cancelled.booking.status == c.BOOKING_STATUS_CANCELLED
    assert await _code(client.admin_api.GetQuota(admin_pb2.GetQuotaRequest(), metadata=staff)) == DENIED
    assert (
        await _code(
            client.admin_api.ResetQuota(admin_pb2.ResetQuotaRequest(date="2000-01-01"), metadata=staff)
        )
        == DENIED
    )
