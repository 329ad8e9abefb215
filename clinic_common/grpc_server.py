"""Building and running a grpc.aio server: health, optional reflection, graceful shutdown."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clinic_common import reflection
from clinic_common.config import cannot_listen

SERVER_OPTIONS: list[tuple[str, int]] = [
    # Clients may ping every 10 s; without this the server answers them with too_many_pings.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 1 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]

Registrar = Callable[[grpc.aio.Server], None]

MALFORMED_REQUEST = "malformed request"


class _Malformed:
    """What a request that does not parse becomes; the handler answers it, not grpcio."""


_MALFORMED = _Malformed()


def _parse_or_flag(deserialize: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def parse(data: bytes) -> object:
        try:
            return deserialize(data)
        except Exception:  # DecodeError and friends: the caller sent bytes no parser reads
            return _MALFORMED

    return parse


NOT_IMPLEMENTED = "method not implemented"


def _generated_stub(behaviour: Callable | None) -> bool:
    """True for a method left as the generated servicer base class's body (which sets
    UNIMPLEMENTED and raises NotImplementedError): the process registers it but does not serve it."""
    func = getattr(behaviour, "__func__", behaviour)
    return getattr(func, "__module__", "").endswith("_pb2_grpc")


def _unimplemented(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """Whatever the body, UNIMPLEMENTED: it is never parsed, so it cannot turn into a DecodeError."""

    async def refuse(context) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_IMPLEMENTED)

    if handler.request_streaming and handler.response_streaming:

        async def stream_stream(requests, context):
            await refuse(context)
            yield  # pragma: no cover - abort raises

        wrapped = {"stream_stream": stream_stream}
    elif handler.request_streaming:

        async def stream_unary(requests, context):
            await refuse(context)

        wrapped = {"stream_unary": stream_unary}
    elif handler.response_streaming:

        async def unary_stream(request, context):
            await refuse(context)
            yield  # pragma: no cover - abort raises

        wrapped = {"unary_stream": unary_stream}
    else:

        async def unary_unary(request, context):
            await refuse(context)

        wrapped = {"unary_unary": unary_unary}
    return handler._replace(request_deserializer=lambda data: None, **wrapped)


def _requests_or_refuse(requests, context):
    async def checked():
        async for request in requests:
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_REQUEST)
            yield request

    return checked()


def refuse_malformed(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
    """The same handler, except that a body that does not parse (truncated, garbage, invalid
    UTF-8 in a string field) gets INVALID_ARGUMENT "malformed request", and a method the servicer
    leaves to its generated base class gets UNIMPLEMENTED whatever the body.

    Left alone, grpcio answers such a body UNKNOWN with the parser's exception class in the
    message (an unimplemented method too: grpcio parses the body before it finds out). Async
    handlers of every shape are wrapped: clinic.v1's unary-request methods, and the reflection
    service's request stream (a malformed message in it ends that stream, nothing else).
    """
    if handler is None or handler.request_deserializer is None:
        return handler
    if handler.request_streaming:
        behaviour = handler.stream_stream if handler.response_streaming else handler.stream_unary
    else:
        behaviour = handler.unary_stream if handler.response_streaming else handler.unary_unary
    if _generated_stub(behaviour):
        return _unimplemented(handler)
    if handler.request_streaming and handler.response_streaming and inspect.isasyncgenfunction(behaviour):

        async def stream_stream(requests, context):
            async for item in behaviour(_requests_or_refuse(requests, context), context):
                yield item

        wrapped = {"stream_stream": stream_stream}
    elif handler.request_streaming and inspect.iscoroutinefunction(behaviour):

        async def stream_unary(requests, context):
            return await behaviour(_requests_or_refuse(requests, context), context)

        wrapped = {"stream_unary": stream_unary}
    elif handler.request_streaming:
        return handler
    elif handler.response_streaming and inspect.isasyncgenfunction(behaviour):

        async def unary_stream(request, context):
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_REQUEST)
            async for item in behaviour(request, context):
                yield item

        wrapped = {"unary_stream": unary_stream}
    elif not handler.response_streaming and inspect.iscoroutinefunction(behaviour):

        async def unary_unary(request, context):
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_REQUEST)
            return await behaviour(request, context)

        wrapped = {"unary_unary": unary_unary}
    else:
        return handler
    return handler._replace(request_deserializer=_parse_or_flag(handler.request_deserializer), **wrapped)


class _RefusingGeneric(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._wrapped: dict[int, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def service(self, handler_call_details):
        found = self._inner.service(handler_call_details)
        if found is None:
            return None
        known = self._wrapped.get(id(found))
        if known is None or known[0] is not found:
            known = self._wrapped[id(found)] = (found, refuse_malformed(found))
        return known[1]


class _Registering:
    """What the registrars see instead of the server: every method handler they add refuses
    malformed bodies itself (generated `add_*_to_server` calls both methods below)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_RefusingGeneric(h) for h in handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name, {name: refuse_malformed(h) for name, h in method_handlers.items()}
        )

    def __getattr__(self, name: str):
        return getattr(self._server, name)


class HealthyServer:
    """A grpc.aio server whose health service follows the process's life."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        port: int,
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.service_names = list(service_names)
        self.port = port

    async def start(self) -> None:
        await self.server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace_s)


def create_server(
    addr: str,
    registrars: Sequence[Registrar],
    service_names: Sequence[str],
    *,
    reflect: bool = True,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    handlers: Sequence[grpc.GenericRpcHandler] = (),
    options: Sequence[tuple[str, int]] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> HealthyServer:
    """Build (not start) a server on `addr`; port 0 picks a free port, reported as `.port`."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=list({**dict(SERVER_OPTIONS), **dict(options)}.items()),  # later settings win
        handlers=list(handlers) or None,
    )
    registering = _Registering(server)
    for register in registrars:
        register(registering)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registering)
    if reflect:
        reflection.add_to_server(registering)  # the whole public API; malformed requests refused too
    try:
        port = server.add_secure_port(addr, credentials) if credentials else server.add_insecure_port(addr)
    except RuntimeError:  # grpc: "Failed to bind to address"
        port = 0
    if port == 0:
        raise cannot_listen(addr, "gRPC")
    return HealthyServer(server, health_servicer, service_names, port)
