"""Forwarding clinic.v1 calls to the internal services as raw bytes (no re-encoding on the way).

The gateway authenticates, stamps the caller's identity and a request id into the metadata it
sends on (dropping any the client tried to set), and passes deadlines and errors through unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc

from clinic.v1 import admin_pb2, booking_pb2, doctor_pb2, frontdesk_pb2, notification_pb2, patient_pb2
from clinic_common import metrics, tracing
from clinic_common import principal as principals
from clinic_common.errors import ClinicError, to_status
from clinic_common.logs import get_logger

from .limits import Limits, exhausted

log = get_logger(__name__)

FILES = (booking_pb2, notification_pb2, admin_pb2, patient_pb2, doctor_pb2, frontdesk_pb2)
UNARY_DEADLINE_S = 15.0
_STRIPPED = {principals.SUB_KEY, principals.ROLE_KEY, "authorization"}

# Reads are safe to retry on another instance; grpc does it when a backend is UNAVAILABLE.
_RETRYABLE = [
    ("clinic.v1.BookingService", "ListServices"),
    ("clinic.v1.BookingService", "GetBooking"),
    ("clinic.v1.BookingService", "ListBookings"),
    ("clinic.v1.AdminService", "GetQuota"),
    ("clinic.v1.PatientService", "GetPatient"),
    ("clinic.v1.PatientService", "FindPatients"),
    ("clinic.v1.DoctorService", "ListDoctors"),
    ("clinic.v1.DoctorService", "GetDoctor"),
    ("clinic.v1.DoctorService", "GetDoctorDay"),
    ("clinic.v1.NotificationService", "WatchBooking"),
    ("clinic.v1.NotificationService", "WatchPatient"),
    ("clinic.v1.FrontDeskService", "GetQueue"),
    ("clinic.v1.FrontDeskService", "WatchQueue"),
]
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": s, "method": m} for s, m in _RETRYABLE],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


def service_names() -> list[str]:
    return [svc.full_name for f in FILES for svc in f.DESCRIPTOR.services_by_name.values()]


@dataclass(frozen=True)
class Route:
    backend: str  # for error messages: "booking_svc unavailable"
    channel: grpc.aio.Channel
    streaming: bool


class Forwarder(grpc.GenericRpcHandler):
    def __init__(self, routes: dict[str, Route], authenticator, limits: Limits | None = None) -> None:
        self._routes = routes
        self._auth = authenticator
        self._limits = limits or Limits()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails):
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            route = self._routes.get(method)
            if route is None:
                return None
            if route.streaming:
                handler = grpc.unary_stream_rpc_method_handler(self._stream(method, route))
            else:
                handler = grpc.unary_unary_rpc_method_handler(self._unary(method, route))
            self._handlers[method] = handler
        return handler

    def _outgoing(
        self, context: grpc.aio.ServicerContext
    ) -> tuple[principals.Principal, list[tuple[str, str]]]:
        metadata = context.invocation_metadata() or ()
        who = self._auth.authenticate(metadata)
        request_id = principals.request_id(metadata) or uuid.uuid4().hex[:16]
        incoming = next((v for k, v in metadata if k == tracing.HEADER and isinstance(v, str)), "")
        trace = tracing.new_traceparent(tracing.trace_id(incoming) or None)
        skip = {*_STRIPPED, principals.REQUEST_ID_KEY, tracing.HEADER}
        out = [(k, v) for k, v in metadata if k not in skip]
        out += [
            (principals.SUB_KEY, who.sub),
            (principals.ROLE_KEY, who.role),
            (principals.REQUEST_ID_KEY, request_id),
            (tracing.HEADER, trace),
        ]
        return who, [
            (k, v) for k, v in out if not k.startswith((":", "grpc-")) and k not in ("user-agent", "te")
        ]

    async def _admit(self, context: grpc.aio.ServicerContext) -> tuple[principals.Principal, list]:
        """Authenticate and rate-limit, or end the call with the right status."""
        try:
            who, metadata = self._outgoing(context)
        except ClinicError as exc:
            metrics.GRPC_REQUESTS.labels("gateway", exc.code.name).inc()
            await context.abort_with_status(to_status(exc))
        wait = self._limits.retry_after(who)
        if wait > 0:
            await context.abort_with_status(
                exhausted(f"rate limit exceeded for {who.sub}; retry later", wait)
            )
        return who, metadata

    def _unary(self, method: str, route: Route):
        call = route.channel.unary_unary(method)

        async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            _, metadata = await self._admit(context)
            remaining = context.time_remaining()
            timeout = min(remaining, UNARY_DEADLINE_S) if remaining else UNARY_DEADLINE_S
            try:
                response = await call(request, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as err:
                metrics.GRPC_REQUESTS.labels(method, err.code().name).inc()
                await _relay_error(context, err, route.backend)
            metrics.GRPC_REQUESTS.labels(method, "OK").inc()
            return response

        return handler

    def _stream(self, method: str, route: Route):
        call_factory = route.channel.unary_stream(method)

        async def handler(request: bytes, context: grpc.aio.ServicerContext):
            who, metadata = await self._admit(context)
            if not self._limits.open_watch(who):
                await context.abort_with_status(
                    exhausted(f"at most {self._limits.max_watches} open watch streams per caller")
                )
            call = call_factory(request, metadata=metadata, timeout=context.time_remaining())
            try:
                initial = await call.initial_metadata()
                if initial:
                    await context.send_initial_metadata(
                        tuple((k, v) for k, v in initial if k.startswith("x-clinic"))
                    )
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as err:
                await _relay_error(context, err, route.backend)
            finally:
                call.cancel()  # the client went away: end the internal stream too
                self._limits.close_watch(who)

        return handler


async def _relay_error(context: grpc.aio.ServicerContext, err: grpc.aio.AioRpcError, backend: str) -> None:
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and not details.startswith(("NATS", "Redis")):
        details = f"{backend} unavailable: {details}"
    trailing = tuple((k, v) for k, v in (err.trailing_metadata() or ()) if k == "grpc-status-details-bin")
    await context.abort(code, details, trailing_metadata=trailing)


def build_routes(
    booking: grpc.aio.Channel,
    notification: grpc.aio.Channel,
    discount: grpc.aio.Channel,
    schedule: grpc.aio.Channel,
    frontdesk: grpc.aio.Channel,
):
    backends = {
        "clinic.v1.BookingService": ("booking_svc", booking),
        "clinic.v1.NotificationService": ("notification_svc", notification),
        "clinic.v1.AdminService": ("discount_svc", discount),
        "clinic.v1.PatientService": ("schedule_svc", schedule),
        "clinic.v1.DoctorService": ("schedule_svc", schedule),
        "clinic.v1.FrontDeskService": ("frontdesk_svc", frontdesk),
    }
    routes = {}
    for f in FILES:
        for svc in f.DESCRIPTOR.services_by_name.values():
            backend, channel = backends[svc.full_name]
            for m in svc.methods:
                routes[f"/{svc.full_name}/{m.name}"] = Route(backend, channel, m.server_streaming)
    return routes
