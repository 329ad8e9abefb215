"""Bad input a stranger tried (issue 24), class by class: each refused with INVALID_ARGUMENT naming
the field, nothing stored; malformed bodies refused the same way, leaking nothing."""

from __future__ import annotations

import grpc
import pytest

from clinic.v1 import (
    booking_pb2,
    common_pb2,
    doctor_pb2,
    frontdesk_pb2,
    frontdesk_pb2_grpc,
    patient_pb2,
)
from clinic.v1 import common_pb2 as c
from clinic_common import tls
from clinic_common.errors import bad_request_fields
from clinic_common.grpc_server import MALFORMED_REQUEST
from clinic_common.reflection import public_files
from gateway import routes
from tests.harness import Client, future_date, uid

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Which process serves which public service on its internal port.
SERVED_BY = {
    "booking_svc": "clinic.v1.BookingService",
    "schedule_svc": "clinic.v1.DoctorService",
    "frontdesk_svc": "clinic.v1.FrontDeskService",
    "notification_svc": "clinic.v1.NotificationService",
    "discount_svc": "clinic.v1.AdminService",
}


async def refused(call, *fields: str) -> list[str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    named = bad_request_fields(caught.value)
    assert set(fields) <= set(named), named
    return named


def inline(pid: str, **kw) -> booking_pb2.CreateBookingRequest:
    return booking_pb2.CreateBookingRequest(
        patient=c.Patient(id=pid, name="Ravi", gender=c.GENDER_MALE, date_of_birth="1980-01-31", **kw),
        service_ids=["gen-consult"],
        appointment_date=future_date(),
    )


async def nothing_stored(client: Client, pid: str) -> None:
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=pid), metadata=client.auth(), timeout=10
    )
    assert list(listed.bookings) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phone": "9" * 10_000}, "patient.phone"),
        ({"phone": "not-a-phone"}, "patient.phone"),
        ({"phone": "9876543210".translate(FULL_WIDTH)}, "patient.phone"),
        ({"email": "no-at-sign"}, "patient.email"),
        ({"email": "a" * 300 + "@example.com"}, "patient.email"),
    ],
)
async def test_an_inline_patients_phone_and_email_are_checked(client, fields, field):
    pid = uid("inline")
    await refused(client.bookings.CreateBooking(inline(pid, **fields), metadata=client.auth()), field)
    await nothing_stored(client, pid)


async def test_an_inline_patients_phone_is_stored_normalised(client):
    pid = uid("inline")
    made = await client.bookings.CreateBooking(
        inline(pid, phone="98765 43210", email=" Asha@Example.COM "), metadata=client.auth(), timeout=10
    )
    assert (made.booking.patient.phone, made.booking.patient.email) == ("+919876543210", "asha@example.com")
    stored = await client.get(made.booking.id)
    assert stored.patient.phone == "+919876543210"


async def test_a_full_width_phone_is_not_a_second_patient(client):
    phone = "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))
    req = patient_pb2.RegisterPatientRequest(
        name="Asha", phone=phone, gender=c.GENDER_FEMALE, date_of_birth="1990-01-01"
    )
    first = await client.patients.RegisterPatient(req, metadata=client.auth(), timeout=10)
    assert first.created
    req.phone = phone.translate(FULL_WIDTH)
    await refused(client.patients.RegisterPatient(req, metadata=client.auth()), "phone")
    found = await client.patients.FindPatients(
        patient_pb2.FindPatientsRequest(phone=phone), metadata=client.auth(), timeout=10
    )
    assert [p.id for p in found.patients] == [first.patient.id]
    await refused(
        client.patients.FindPatients(
            patient_pb2.FindPatientsRequest(phone=phone.translate(FULL_WIDTH)), metadata=client.auth()
        ),
        "phone",
    )


async def test_full_width_digits_are_not_a_time(client):
    doctor = await client.doctor()
    req = inline(uid("fw"))
    req.doctor_id, req.start_time = doctor.id, "１０:００"
    await refused(client.bookings.CreateBooking(req, metadata=client.auth()), "start_time")
    create = doctor_pb2.CreateDoctorRequest(
        code=uid("DR"), name="Dr Wide", service_ids=["gen-consult"], day_start="１０:００"
    )
    await refused(client.doctors.CreateDoctor(create, metadata=client.auth()), "day_start")
    await refused(
        client.doctors.SetAvailability(
            doctor_pb2.SetAvailabilityRequest(
                doctor_id=doctor.id, date=future_date(), present=True, day_end="１７:００"
            ),
            metadata=client.auth(),
        ),
        "day_end",
    )


async def test_an_id_with_a_trailing_newline_is_not_an_id(client):
    pid = uid("nl")
    await refused(client.bookings.CreateBooking(inline(pid + "\n"), metadata=client.auth()), "patient.id")
    await nothing_stored(client, pid + "\n")
    doctor = await client.doctor()
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    staff = Client.auth("front-desk", "staff")
    await refused(
        desk.GetQueue(frontdesk_pb2.GetQueueRequest(doctor_id=doctor.id + "\n"), metadata=staff), "doctor_id"
    )
    watch = desk.WatchQueue(
        frontdesk_pb2.WatchQueueRequest(doctor_id=doctor.id + "\n"), metadata=staff, timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in watch:
            break
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await refused(
        client.doctors.GetDoctor(
            doctor_pb2.GetDoctorRequest(doctor_id=doctor.id + "\n"), metadata=client.auth()
        ),
        "doctor_id",
    )


async def test_every_bad_field_of_a_cancel_is_named_at_once(client):
    req = booking_pb2.CancelBookingRequest(booking_id="", reason="r" * 501)
    await refused(client.bookings.CancelBooking(req, metadata=client.auth()), "booking_id", "reason")


async def test_enum_numbers_the_schema_does_not_define_are_refused(client):
    await refused(
        client.bookings.ListServices(booking_pb2.ListServicesRequest(gender=7), metadata=client.auth()),
        "gender",
    )
    await refused(
        client.bookings.ListBookings(
            booking_pb2.ListBookingsRequest(patient_id="p", status=42), metadata=client.auth()
        ),
        "status",
    )
    pid = uid("enum")
    req = inline(pid)
    req.patient.gender = 9
    await refused(client.bookings.CreateBooking(req, metadata=client.auth()), "patient.gender")
    await refused(
        client.patients.RegisterPatient(
            patient_pb2.RegisterPatientRequest(
                name="A", phone="9876500000", gender=-2, date_of_birth="1990-01-01"
            ),
            metadata=client.auth(),
        ),
        "gender",
    )
    everyone = await client.bookings.ListServices(booking_pb2.ListServicesRequest(), metadata=client.auth())
    assert everyone.services  # the defined values still work


def _methods(service_name: str | None = None):
    for file in public_files():
        for service in file.services_by_name.values():
            if service_name in (None, service.full_name):
                yield from service.methods


def _bodies(method) -> dict[str, bytes]:
    """Bodies no parser reads, whatever the schema; and bad UTF-8 where field 1 is a string."""
    one = booking_pb2.GetBookingRequest(booking_id="abcdef").SerializeToString()
    bodies = {"truncated": one[:-3], "garbage": b"\xff\xfe\xfd\xfc\x00\x01"}
    first = method.input_type.fields_by_number.get(1)
    if first is not None and first.type == first.TYPE_STRING:
        bodies["invalid utf-8 in a string field"] = b"\x0a\x03a\xc3\x28"
    return bodies


async def _refused_as_malformed(channel: grpc.aio.Channel, method, metadata=()) -> int:
    path = f"/{method.containing_service.full_name}/{method.name}"
    for what, body in _bodies(method).items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method.server_streaming:
                async for _ in channel.unary_stream(path)(body, metadata=metadata, timeout=10):
                    pass
            else:
                await channel.unary_unary(path)(body, metadata=metadata, timeout=10)
        # The same words everywhere, and nothing about the parser or the language behind it.
        assert (caught.value.code(), caught.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            MALFORMED_REQUEST,
        ), f"{path} ({what})"
    return len(_bodies(method))


async def test_a_malformed_body_at_the_public_endpoint_is_refused_cleanly(system):
    async with grpc.aio.insecure_channel(system.gateway_addr) as channel:
        sent = [await _refused_as_malformed(channel, m, Client.auth()) for m in _methods()]
    assert len(sent) >= 20 and sum(sent) > 2 * len(sent)  # every method, and UTF-8 bodies too


@pytest.mark.parametrize("process", list(SERVED_BY))
async def test_a_malformed_body_at_an_internal_service_is_refused_cleanly(system, process):
    internal = tls.InternalTls.from_env(system.service_env(process))
    async with grpc.aio.secure_channel(
        system.addr_of(process), internal.channel_credentials(), options=internal.channel_options()
    ) as channel:
        for method in _routed_to(process):
            await _refused_as_malformed(channel, method)


def _routed_to(process: str):
    """The methods the edge sends to `process`: its service's, less those routed one by one elsewhere
    (AdminService/GetDaySummary goes to booking_svc), plus those routed one by one to it."""
    for method in _methods():
        routed = routes.METHODS.get(f"/{method.containing_service.full_name}/{method.name}")
        if routed == process or (
            routed is None and method.containing_service.full_name == SERVED_BY[process]
        ):
            yield method


async def test_a_good_booking_still_confirms_after_all_that(client):
    made = await client.create(
        common_pb2.Patient(id=uid("after"), name="Ravi", gender=c.GENDER_MALE, date_of_birth="1980-01-31"),
        ["gen-consult"],
        appointment_date=future_date(),
    )
    settled = await client.settled(made.id, notified=False)
    assert settled.status == c.BOOKING_STATUS_CONFIRMED


def _registered_not_served(process: str):
    """Methods `process` registers (its whole service) but the edge routes elsewhere: it answers them
    from the generated base class (discount_svc and AdminService/GetDaySummary)."""
    routed_here = {f"/{m.containing_service.full_name}/{m.name}" for m in _routed_to(process)}
    for method in _methods(SERVED_BY[process]):
        if f"/{method.containing_service.full_name}/{method.name}" not in routed_here:
            yield method


def _internal_channel(system, process: str) -> grpc.aio.Channel:
    internal = tls.InternalTls.from_env(system.service_env(process))
    return grpc.aio.secure_channel(
        system.addr_of(process), internal.channel_credentials(), options=internal.channel_options()
    )


async def test_a_method_registered_but_not_implemented_answers_unimplemented(system):
    unserved = list(_registered_not_served("discount_svc"))
    assert "GetDaySummary" in [m.name for m in unserved]
    async with _internal_channel(system, "discount_svc") as channel:
        for method in unserved:
            path = f"/{method.containing_service.full_name}/{method.name}"
            good = method.input_type._concrete_class().SerializeToString()
            for what, body in {"well-formed": good, **_bodies(method)}.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await channel.unary_unary(path)(body, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, f"{path} ({what})"
                assert "Decode" not in (caught.value.details() or ""), caught.value.details()


@pytest.mark.parametrize("where", ["gateway", "booking_svc"])
async def test_a_malformed_reflection_request_is_refused_and_reflection_still_works(system, where):
    from grpc_reflection.v1alpha import reflection_pb2

    good = reflection_pb2.ServerReflectionRequest(list_services="*").SerializeToString()
    channel = (
        grpc.aio.insecure_channel(system.gateway_addr)
        if where == "gateway"
        else _internal_channel(system, where)
    )
    async with channel:
        for version in ("v1", "v1alpha"):
            path = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
            for body in (b"\xff\xfe\xfd\xfc\x00\x01", good[:-2], b"\x3a\x03a\xc3\x28"):
                # One good request answered, then the bad one on the same stream: the stream ends
                # with the server's status (written step by step: a client still sending after the
                # server ended the call gets its own INTERNAL from grpc core, which would hide it).
                call = channel.stream_stream(path)(timeout=10)
                await call.write(good)
                assert await call.read() != grpc.aio.EOF
                await call.write(body)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call.read()
                assert (caught.value.code(), caught.value.details()) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    MALFORMED_REQUEST,
                ), f"{where} {version} {body!r}"
            # The same process still answers a well-formed reflection stream.
            answers = [
                reflection_pb2.ServerReflectionResponse.FromString(r)
                async for r in channel.stream_stream(path)(iter([good]), timeout=10)
            ]
            names = {s.name for s in answers[0].list_services_response.service}
            assert "clinic.v1.BookingService" in names
