"""Only the right people get in: the authorization matrix, bad tokens, limits, least privilege."""

from __future__ import annotations

import asyncio
import time

import grpc
import jwt
import nats
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from clinic.v1 import admin_pb2, booking_pb2, notification_pb2
from clinic.v1 import common_pb2 as c
from clinic_common import subjects
from discount_svc import store as quota
from tests.footprint import Footprint
from tests.harness import SECRET, Client, future_date, patient, uid, wait_for

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED


async def _code(coro) -> grpc.StatusCode:
    try:
        result = await coro
    except grpc.aio.AioRpcError as err:
        return err.code()
    return result if isinstance(result, grpc.StatusCode) else OK


async def _first_event(client: Client, call) -> grpc.StatusCode:
    """OK once the stream is live (WatchPatient says so in its headers) or yields an event."""
    try:
        if ("x-clinic-watch", "live") in tuple(await call.initial_metadata() or ()):
            return OK
        async for _ in call:
            break
    except grpc.aio.AioRpcError as err:
        return err.code()
    finally:
        call.cancel()
    return OK


@pytest.fixture(scope="module")
async def two_bookings(client):
    alice, bob = patient(uid("alice")), patient(uid("bob"))
    a = await client.create(alice, ["gen-consult"], appointment_date=future_date())
    b = await client.create(bob, ["gen-consult"], appointment_date=future_date())
    await client.settled(a.id)
    await client.settled(b.id)
    return alice, a, bob, b


async def test_authorization_matrix(client, two_bookings, redis, servers):
    alice, a, bob, b = two_bookings
    as_alice = Client.auth(alice.id, "patient")
    as_admin = Client.auth()
    api, notes, admin = client.bookings, client.notifications, client.admin_api
    footprint = await Footprint(redis, servers.nats_url).start()
    denied_marks: list[str] = []

    def calls(md, booking_id, patient_id, who):
        request_id = uid(f"matrix-{who}")
        if who == "alice" and patient_id != alice.id:
            denied_marks.append(request_id)
        return {
            "ListServices": lambda: api.ListServices(booking_pb2.ListServicesRequest(), metadata=md),
            "CreateBooking": lambda: api.CreateBooking(
                booking_pb2.CreateBookingRequest(
                    patient=patient(patient_id),
                    service_ids=["gen-consult"],
                    appointment_date=future_date(),
                    request_id=request_id,
                ),
                metadata=md,
            ),
            "GetBooking": lambda: api.GetBooking(
                booking_pb2.GetBookingRequest(booking_id=booking_id), metadata=md
            ),
            "ListBookings": lambda: api.ListBookings(
                booking_pb2.ListBookingsRequest(patient_id=patient_id), metadata=md
            ),
            "WatchBooking": lambda: _first_event(
                client,
                notes.WatchBooking(notification_pb2.WatchBookingRequest(booking_id=booking_id), metadata=md),
            ),
            "WatchPatient": lambda: _first_event(
                client,
                notes.WatchPatient(
                    notification_pb2.WatchPatientRequest(patient_id=patient_id), metadata=md, timeout=5
                ),
            ),
            "GetQuota": lambda: admin.GetQuota(admin_pb2.GetQuotaRequest(), metadata=md),
        }

    async def run(md, booking_id, patient_id, who) -> dict[str, grpc.StatusCode]:
        return {name: await _code(call()) for name, call in calls(md, booking_id, patient_id, who).items()}

    own = await run(as_alice, a.id, alice.id, "alice")
    other = await run(as_alice, b.id, bob.id, "alice")
    operator = await run(as_admin, b.id, bob.id, "admin")
    assert own == {**{k: OK for k in own}, "GetQuota": DENIED}
    assert other == {**{k: DENIED for k in other}, "ListServices": OK}
    assert operator == {k: OK for k in operator}

    # Cancelling: someone else's booking is denied and stays as it was; one's own works.
    def cancel(bid):
        return api.CancelBooking(booking_pb2.CancelBookingRequest(booking_id=bid), metadata=as_alice)

    before = await client.get(b.id)
    assert await _code(cancel(b.id)) == DENIED
    assert await _code(cancel(a.id)) in (OK, grpc.StatusCode.FAILED_PRECONDITION)
    # A patient cannot reset the quota: a day with units used keeps them.
    day = "2000-01-01"
    await redis.set(quota.used_key(day), 3)
    assert await _code(admin.ResetQuota(admin_pb2.ResetQuotaRequest(date=day), metadata=as_alice)) == DENIED
    assert await redis.get(quota.used_key(day)) == b"3"
    # Alice's bookings for Bob were stored and published nowhere; Bob's booking is as it was.
    await footprint.assert_untouched(denied_marks)
    assert await client.get(b.id) == before
    assert not [s for s in await footprint.published([b.id])]


def _bad_tokens() -> dict[str, str | None]:
    """Minted when the test runs, so each fails for its own reason only (not for having expired)."""
    now = int(time.time())

    def token(**claims) -> str:
        base = {"sub": "p1", "role": "patient", "exp": now + 60}
        base.update(claims)
        return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET, algorithm="HS256")

    return {
        "none": None,
        "expired": token(exp=now - 10),
        "other key": jwt.encode(
            {"sub": "p1", "role": "admin", "exp": now + 60},
            "another-secret-of-at-least-32-bytes!!",
            algorithm="HS256",
        ),
        "alg none": jwt.encode({"sub": "p1", "role": "admin", "exp": now + 60}, None, algorithm="none"),
        "malformed": "not.a.jwt",
        "no role": token(role=None),
        "bad role": token(role="root"),
        "no exp": token(exp=None),
        "bad sub": token(sub="p1 OR 1=1"),
        "sub too long": token(sub="p" * 65),
        "basic scheme": "Basic YWRtaW46YWRtaW4=",
    }


# What the edge (Envoy: jwt_authn, then RBAC on the role and the subject's shape) answers for each:
# the reason under test, not another one met on the way.
BAD_TOKEN_DETAILS = {
    "none": "Jwt is missing",
    "expired": "Jwt is expired",
    "other key": "Jwt verification fails",
    "alg none": "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
    "malformed": "Jwt header is an invalid JSON",
    "basic scheme": "Jwt is missing",
    "no exp": "Jwt verification fails",  # jwt_authn requires exp
    "no role": "invalid token: unknown role or malformed subject",  # RBAC after jwt_authn
    "bad role": "invalid token: unknown role or malformed subject",
    "bad sub": "invalid token: unknown role or malformed subject",
    "sub too long": "invalid token: unknown role or malformed subject",
}


@pytest.mark.parametrize("kind", list(BAD_TOKEN_DETAILS))
async def test_bad_tokens_are_unauthenticated(client, kind, redis, servers):
    token = _bad_tokens()[kind]
    md = [("authorization", token if token.startswith("Basic ") else f"Bearer {token}")] if token else []
    footprint = await Footprint(redis, servers.nats_url).start()
    who, request_id = patient(uid("p1")), uid("bad-token")
    req = booking_pb2.CreateBookingRequest(
        patient=who, service_ids=["gen-consult"], appointment_date=future_date(), request_id=request_id
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.CreateBooking(req, metadata=md, timeout=10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        BAD_TOKEN_DETAILS[kind],
    )
    await footprint.assert_untouched([who.id, request_id])


async def test_health_and_reflection_need_no_token(system):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(system.gateway_addr) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in stream for s in r.list_services_response.service]
    assert {"clinic.v1.BookingService", "clinic.v1.NotificationService", "clinic.v1.AdminService"} <= set(
        names
    )


async def test_patient_rate_limit_answers_resource_exhausted_with_retry_info(client):
    md = Client.auth(uid("hammer"), "patient")
    codes, retry = [], None
    for _ in range(80):
        try:
            await client.bookings.ListServices(booking_pb2.ListServicesRequest(), metadata=md)
            codes.append(OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
            status = rpc_status.from_call(err)
            for detail in status.details if status else []:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
    assert OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert retry is not None and retry.retry_delay.ToTimedelta().total_seconds() > 0


async def test_oversized_request_is_refused(client, redis, servers):
    footprint = await Footprint(redis, servers.nats_url).start()
    req = booking_pb2.CreateBookingRequest(
        patient=c.Patient(
            id=uid("big"), name="x" * 200_000, gender=c.GENDER_MALE, date_of_birth="1980-01-01"
        ),
        service_ids=["gen-consult"],
        request_id=uid("big-req"),
    )
    assert (
        await _code(client.bookings.CreateBooking(req, metadata=client.auth()))
        == grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    await footprint.assert_untouched([req.patient.id, req.request_id])


async def test_open_watch_streams_per_caller_are_capped(client):
    """notification_svc counts a patient's open watch streams (CLINIC_MAX_WATCH_STREAMS, 10): the
    eleventh is refused while ten are open, and one closing makes room again."""
    who = uid("watcher")
    md = Client.auth(who, "patient")

    def watch():
        return client.notifications.WatchPatient(
            notification_pb2.WatchPatientRequest(patient_id=who), metadata=md, timeout=5
        )

    streams = [watch() for _ in range(10)]
    try:
        # Each sends its initial metadata once registered (live): all ten are open.
        live = await asyncio.gather(*(s.initial_metadata() for s in streams))
        assert all(("x-clinic-watch", "live") in tuple(m) for m in live)
        streams.append(watch())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in streams[10]:
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "open watch streams" in caught.value.details()
        streams[0].cancel()  # one closes: a new one is let in (once the server saw it end)

        async def one_more_is_let_in() -> bool:
            again = watch()
            streams.append(again)
            try:
                return ("x-clinic-watch", "live") in tuple(await again.initial_metadata())
            except grpc.aio.AioRpcError:
                return False

        await wait_for(one_more_is_let_in, 5, "a stream let in after one closed")
    finally:
        for s in streams:
            s.cancel()


async def test_a_service_cannot_publish_outside_its_subjects(servers):
    """discount_svc's NATS user forging a booking event: the server answers with a permissions
    violation, and the stream never holds the message."""
    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc))

    async def violated() -> bool:
        return bool(violations)

    subject = f"booking.events.{uid('forged')}"
    nc = await nats.connect(servers.creds.nats_url("discount_svc", servers.nats_port), error_cb=on_error)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # dropped by the server: no ack ever comes
            await nc.jetstream(timeout=1).publish(subject, b"forged")
        await wait_for(violated, 5, "the server's permissions violation")
    finally:
        await nc.close()
    expected = f'permissions violation for publish to "{subject}"'
    assert any(expected in v.lower() for v in violations), violations
    ops = await nats.connect(servers.nats_url)
    try:
        with pytest.raises(nats.js.errors.NotFoundError):
            await ops.jetstream().get_msg(subjects.EVENTS_STREAM, subject=subject)
    finally:
        await ops.close()


async def test_logs_of_a_full_saga_name_no_patient_and_no_birth_date(client, system):
    name = "Zanele Unmistakable-Surname"
    who = c.Patient(id=uid("private"), name=name, gender=c.GENDER_FEMALE, date_of_birth="1977-07-07")
    booking = await client.create(who, ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    logs = "".join(system.log_tail(m, 10_000_000) for m in system.procs)
    assert booking.id in logs and who.id in logs  # the saga was logged, by id
    assert name not in logs and "Unmistakable" not in logs
    assert "1977-07-07" not in logs
