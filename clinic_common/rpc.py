"""The one place that turns domain errors into gRPC statuses and binds request context to logs."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import structlog

from clinic_common import metrics, tracing
from clinic_common import principal as principals
from clinic_common.errors import ClinicError, InvalidArgument, Unavailable, to_status
from clinic_common.logs import get_logger
from clinic_common.nats_io import TRANSIENT_NATS_ERRORS
from clinic_common.redis_io import TRANSIENT_REDIS_ERRORS
from clinic_common.validate import undefined_enums

log = get_logger(__name__)


def _as_clinic_error(exc: BaseException) -> ClinicError | None:
    if isinstance(exc, ClinicError):
        return exc
    if isinstance(exc, TRANSIENT_REDIS_ERRORS):
        return Unavailable(f"Redis unavailable: {type(exc).__name__}")
    if isinstance(exc, TRANSIENT_NATS_ERRORS):
        return Unavailable(f"NATS unavailable: {type(exc).__name__}")
    return None


def _bind(context: grpc.aio.ServicerContext) -> principals.Principal:
    metadata = context.invocation_metadata() or ()
    structlog.contextvars.bind_contextvars(
        request_id=principals.request_id(metadata) or uuid.uuid4().hex[:16]
    )
    return principals.from_context(context)


def _require_known_enums(request) -> None:
    """Every handler's first check: an enum number the schema does not define is bad input."""
    bad = undefined_enums(request)
    if bad:
        raise InvalidArgument(bad)


def _span(servicer: object, fn: Callable, context: grpc.aio.ServicerContext):
    """The SERVER span of one call, parented by the caller's traceparent (the edge's span)."""
    parent = next(
        (v for k, v in context.invocation_metadata() or () if k == tracing.HEADER and isinstance(v, str)), ""
    )
    service = type(servicer).__name__.removesuffix("Servicer")
    return tracing.span(
        f"{service}/{fn.__name__}", "server", parent, **{"rpc.system": "grpc", "rpc.method": fn.__name__}
    )


def _count(name: str, code: grpc.StatusCode) -> None:
    metrics.GRPC_REQUESTS.labels(name, code.name).inc()


def unary(fn: Callable) -> Callable:
    """Decorate `async def Method(self, request, context, who)`: who is the caller's Principal."""

    @functools.wraps(fn)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            with _span(self, fn, context):
                who = _bind(context)
                _require_known_enums(request)
                response = await fn(self, request, context, who)
            _count(fn.__name__, grpc.StatusCode.OK)
            return response
        except Exception as exc:
            error = _as_clinic_error(exc)
            if error is None:
                _count(fn.__name__, grpc.StatusCode.INTERNAL)
                log.exception("rpc.failed", method=fn.__name__)
                raise
            _count(fn.__name__, error.code)
            await context.abort_with_status(to_status(error))
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "booking_id")

    return wrapper


def for_booking(fn: Callable) -> Callable:
    """`unary` for a method whose request names a booking: its booking_id is bound to the call's logs."""

    @functools.wraps(fn)
    async def bound(self, request, context: grpc.aio.ServicerContext, who: principals.Principal):
        structlog.contextvars.bind_contextvars(booking_id=request.booking_id)
        return await fn(self, request, context, who)

    return unary(bound)


def server_stream(fn: Callable) -> Callable:
    """Decorate an async-generator streaming method the same way."""

    @functools.wraps(fn)
    async def wrapper(self, request, context: grpc.aio.ServicerContext) -> AsyncIterator:
        try:
            with _span(self, fn, context):
                who = _bind(context)
                _require_known_enums(request)
                async for item in fn(self, request, context, who):
                    yield item
            _count(fn.__name__, grpc.StatusCode.OK)
        except Exception as exc:
            error = _as_clinic_error(exc)
            if error is None:
                _count(fn.__name__, grpc.StatusCode.INTERNAL)
                log.exception("rpc.failed", method=fn.__name__)
                raise
            _count(fn.__name__, error.code)
            await context.abort_with_status(to_status(error))

    return wrapper
