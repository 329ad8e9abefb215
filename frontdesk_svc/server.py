"""Builds frontdesk_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import frontdesk_pb2, frontdesk_pb2_grpc
from clinic_common import bootstrap, metrics, nats_io, tls
from clinic_common.grpc_client import open_channel
from clinic_common.grpc_server import create_server

from .booking_client import BookingClient
from .config import FrontDeskConfig
from .events import Relay
from .handlers import FrontDeskServicer
from .hub import QueueHub
from .store import QueueStore
from .usecases import FrontDesk

SERVICE_NAME = frontdesk_pb2.DESCRIPTOR.services_by_name["FrontDeskService"].full_name
SWEEP_PERIOD_S = 1.0


async def main(stop: asyncio.Event, config: FrontDeskConfig) -> None:
    metrics.serve(config.metrics_addr, "frontdesk_svc")
    async with bootstrap.connected("frontdesk_svc", config.connections) as deps:

        async def publish(subject: str, payload: bytes, msg_id: str) -> None:
            await nats_io.publish(deps.js, subject, payload, msg_id)

        store = QueueStore(deps.redis)
        relay = Relay(store, publish)
        hub = QueueHub()
        await hub.start(deps.nc)
        booking_channel = open_channel(config.booking_addrs, tls=tls.InternalTls.from_env())
        desk = FrontDesk(store, relay, BookingClient(booking_channel), hub, deps.js, config.timezone)
        servicer = FrontDeskServicer(desk)
        server = create_server(
            config.addr,
            [lambda s: frontdesk_pb2_grpc.add_FrontDeskServiceServicer_to_server(servicer, s)],
            [SERVICE_NAME],
            credentials=tls.server_credentials_from_env(),
        )
        sweeper = bootstrap.every(SWEEP_PERIOD_S, relay.sweep, stop, "visits.outbox_sweep")
        try:
            await bootstrap.serve(server, stop, duties=[sweeper], on_stopping=[hub.close])
        finally:
            await hub.stop()
            await booking_channel.close()
