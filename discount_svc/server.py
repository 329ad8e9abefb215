"""Builds discount_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import admin_pb2, admin_pb2_grpc, booking_pb2_grpc
from clinic_common import bootstrap, metrics, nats_io, tls
from clinic_common.clock import Clock, clinic_day
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_client import open_channel
from clinic_common.grpc_server import create_server

from .config import DiscountConfig
from .events import CONSUMER, make_handler
from .handlers import AdminServicer
from .store import QuotaStore
from .usecases import Discounts
from .verify import QuotaVerifier

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


async def main(stop: asyncio.Event, config: DiscountConfig) -> None:
    metrics.serve(config.metrics_addr, "discount_svc")
    async with bootstrap.connected("discount_svc", config.connections) as deps:

        async def publish(subject: str, payload: bytes, msg_id: str) -> None:
            await nats_io.publish(deps.js, subject, payload, msg_id)

        quota = QuotaStore(deps.redis, config.daily_quota)
        discounts = Discounts(quota, config.rules, publish)
        booking_channel = open_channel(config.booking_addrs, tls=tls.InternalTls.from_env())
        verifier = QuotaVerifier(quota, discounts, booking_pb2_grpc.BookingServiceStub(booking_channel))
        admin = AdminServicer(quota, verifier, config.timezone)
        server = create_server(
            config.addr,
            [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, s)],
            [SERVICE_NAME],
            credentials=tls.server_credentials_from_env(),
            reflect=True,  # the whole public API: an edge may route reflection to any one upstream
        )
        consumer = ConsumerLoop(deps.nc, deps.js, CONSUMER, make_handler(discounts))
        metrics.QUOTA_LIMIT.set(config.daily_quota)

        async def report_quota() -> None:
            day = clinic_day(Clock().now(), config.timezone).isoformat()
            metrics.QUOTA_USED.set((await quota.state(day)).used)

        try:
            await bootstrap.serve(
                server,
                stop,
                consumers=[consumer],
                duties=[bootstrap.every(5.0, report_quota, stop, "quota-gauge")],
            )
        finally:
            await booking_channel.close()
