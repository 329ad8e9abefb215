"""Building and running a grpc.aio server: health, optional reflection, graceful shutdown."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflect:
        reflection.add_to_server(server)  # the whole public API, whatever this process serves
    try:
        port = server.add_secure_port(addr, credentials) if credentials else server.add_insecure_port(addr)
    except RuntimeError:  # grpc: "Failed to bind to address"
        port = 0
    if port == 0:
        raise cannot_listen(addr, "gRPC")
    return HealthyServer(server, health_servicer, service_names, port)
