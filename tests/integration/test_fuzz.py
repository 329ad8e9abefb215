"""Arbitrary field values at every rpc: only well-formed answers, never UNKNOWN/INTERNAL, no crash.

Every value reaches the service that judges it: a fuzzed patient id travels as the token's subject
when the gateway accepts it as one (else as an operator's request), and an answer that does not come
within the deadline is a failure, not an allowed outcome.
"""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clinic.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    booking_pb2,
    booking_pb2_grpc,
    common_pb2,
    notification_pb2,
    notification_pb2_grpc,
)
from gateway.auth import SUBJECT
from tests.harness import Client, uid

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}

texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["", "gen-consult", "2026-02-29", "1990-01-01", "fail_test_user", "a.b.c", "*", ">", " "]
    ),
    st.text(alphabet="0123456789-", min_size=8, max_size=12),
)
enums = st.integers(min_value=-3, max_value=12)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def _check(call) -> None:
    try:
        call()
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (err.code(), err.details())


def _check_stream(call) -> None:
    """A watch answers with an error, an event, or (WatchPatient) the header saying it is live."""
    try:
        if ("x-clinic-watch", "live") in tuple(call.initial_metadata() or ()):
            return
        for _ in call:
            break
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (err.code(), err.details())
    finally:
        call.cancel()


def _as(patient_id: str) -> list[tuple[str, str]]:
    """That patient's own token when the id can be a token subject, else an operator's: either way
    the id reaches booking_svc's own checks instead of stopping at the gateway."""
    return Client.auth(patient_id, "patient") if SUBJECT.match(patient_id) else Client.auth()


def _stubs(system):
    channel = grpc.insecure_channel(system.gateway_addr)
    md = Client.auth(uid("fuzz"), "patient")  # a caller per example: the rate limit is not under test
    return channel, md


@given(
    pid=texts,
    name=texts,
    gender=enums,
    dob=texts,
    services=st.lists(texts, max_size=25),
    day=texts,
    request_id=texts,
)
# Ids no token subject can carry: they reach booking_svc as an operator's request, every run.
@example(pid="p 1", name="n", gender=1, dob="1990-01-01", services=["gen-consult"], day="", request_id="")
@example(pid="x" * 80, name="n", gender=1, dob="1990-01-01", services=["gen-consult"], day="", request_id="")
@SETTINGS
def test_create_booking_fuzz(system, pid, name, gender, dob, services, day, request_id):
    channel, _ = _stubs(system)
    with channel:
        stub = booking_pb2_grpc.BookingServiceStub(channel)
        req = booking_pb2.CreateBookingRequest(
            patient=common_pb2.Patient(id=pid, name=name, gender=gender, date_of_birth=dob),
            service_ids=services,
            appointment_date=day,
            request_id=request_id,
        )
        _check(lambda: stub.CreateBooking(req, metadata=_as(pid), timeout=10))


@given(
    booking_id=texts,
    patient_id=texts,
    page_size=st.integers(-5, 500),
    token=texts,
    reason=texts,
    gender=enums,
)
@SETTINGS
def test_read_and_cancel_fuzz(system, booking_id, patient_id, page_size, token, reason, gender):
    channel, md = _stubs(system)
    with channel:
        stub = booking_pb2_grpc.BookingServiceStub(channel)
        _check(
            lambda: stub.ListServices(booking_pb2.ListServicesRequest(gender=gender), metadata=md, timeout=5)
        )
        _check(
            lambda: stub.GetBooking(
                booking_pb2.GetBookingRequest(booking_id=booking_id), metadata=md, timeout=5
            )
        )
        _check(
            lambda: stub.ListBookings(
                booking_pb2.ListBookingsRequest(patient_id=patient_id, page_size=page_size, page_token=token),
                metadata=Client.auth(),
                timeout=5,
            )
        )
        _check(
            lambda: stub.CancelBooking(
                booking_pb2.CancelBookingRequest(booking_id=booking_id, reason=reason), metadata=md, timeout=5
            )
        )


@given(booking_id=texts, patient_id=texts, follow=st.booleans(), day=texts)
@SETTINGS
def test_watch_and_admin_fuzz(system, booking_id, patient_id, follow, day):
    channel, md = _stubs(system)
    admin_md = Client.auth()
    with channel:
        notes = notification_pb2_grpc.NotificationServiceStub(channel)
        _check_stream(
            notes.WatchBooking(
                notification_pb2.WatchBookingRequest(booking_id=booking_id, follow=follow),
                metadata=admin_md,
                timeout=10,
            )
        )
        _check_stream(
            notes.WatchPatient(
                notification_pb2.WatchPatientRequest(patient_id=patient_id),
                metadata=_as(patient_id),
                timeout=10,
            )
        )
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        _check(lambda: admin.GetQuota(admin_pb2.GetQuotaRequest(date=day), metadata=admin_md, timeout=5))
        _check(lambda: admin.GetQuota(admin_pb2.GetQuotaRequest(date=day), metadata=md, timeout=5))
