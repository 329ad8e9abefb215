"""Builds notification_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import notification_pb2, notification_pb2_grpc
from clinic_common import bootstrap, metrics, nats_io, tls
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_server import create_server

from .config import NotificationConfig
from .handlers import NotificationServicer
from .hub import EventHub
from .limits import OpenStreams
from .notifier import CONSUMER, VISIT_CONSUMER, CallNotifier, Notifier

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


async def main(stop: asyncio.Event, config: NotificationConfig) -> None:
    metrics.serve(config.metrics_addr, "notification_svc")
    async with bootstrap.connected("notification_svc", config.connections) as deps:

        async def publish(subject: str, payload: bytes, msg_id: str) -> None:
            await nats_io.publish(deps.js, subject, payload, msg_id)

        hub = EventHub()
        await hub.start(deps.nc)
        servicer = NotificationServicer(hub, deps.js, OpenStreams(config.max_watch_streams))
        server = create_server(
            config.addr,
            [lambda s: notification_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, s)],
            [SERVICE_NAME],
            credentials=tls.server_credentials_from_env(),
            reflect=True,  # the whole public API: an edge may route reflection to any one upstream
        )
        notifier = Notifier(deps.redis, publish)
        consumer = ConsumerLoop(deps.nc, deps.js, CONSUMER, notifier.handle)
        calls = ConsumerLoop(deps.nc, deps.js, VISIT_CONSUMER, CallNotifier(deps.redis).handle)
        try:
            await bootstrap.serve(server, stop, consumers=[consumer, calls], on_stopping=[hub.close])
        finally:
            await hub.stop()
