"""Builds booking_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import admin_pb2_grpc, booking_pb2, booking_pb2_grpc
from clinic_common import bootstrap, metrics, nats_io, tls
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_client import open_channel
from clinic_common.grpc_server import HealthyServer, create_server

from .attendance import NoShows, Releases
from .config import BookingConfig
from .events import CONSUMER, make_handler
from .handlers import BookingServicer, DaySummaryServicer
from .saga import Bookings
from .schedule_client import ScheduleClient
from .store import BookingStore

NO_SHOW_SWEEP_S = 60.0  # no-shows are a matter of hours: once a minute is plenty
RELEASE_SWEEP_S = 5.0  # a released place should reach the waitlist soon after the deadline

SERVICE_NAME = booking_pb2.DESCRIPTOR.services_by_name["BookingService"].full_name


def build(
    config: BookingConfig,
    deps: bootstrap.Deps,
    schedule: ScheduleClient | None = None,
) -> tuple[HealthyServer, Bookings, BookingStore]:
    async def publish(message) -> None:
        await nats_io.publish(
            deps.js, message.subject, message.payload, message.msg_id, headers=dict(message.headers)
        )

    store = BookingStore(deps.redis)
    bookings = Bookings(
        store,
        publish,
        config.catalog,
        config.timezone,
        timeout_s=config.timeout_s,
        max_pending=config.max_pending,
        bus_ready=lambda: deps.nc.is_connected,
        schedule=schedule,
        country_code=config.country_code,
        cancel_notice_hours=config.cancel_notice_hours,
        refund_policy=config.refund_policy,
        durable_money=config.payment_fsync == "waitaof",
    )
    servicer = BookingServicer(bookings)
    summaries = DaySummaryServicer(bookings)
    server = create_server(
        config.addr,
        [
            lambda s: booking_pb2_grpc.add_BookingServiceServicer_to_server(servicer, s),
            lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(summaries, s),
        ],
        [SERVICE_NAME],
        credentials=tls.server_credentials_from_env(),
        reflect=True,  # the whole public API: an edge may route reflection to any one upstream
    )
    return server, bookings, store


async def main(stop: asyncio.Event, config: BookingConfig) -> None:
    metrics.serve(config.metrics_addr, "booking_svc")
    async with bootstrap.connected("booking_svc", config.connections) as deps:
        schedule_channel = open_channel(config.schedule_addrs, tls=tls.InternalTls.from_env())
        schedule = ScheduleClient(schedule_channel)
        server, bookings, store = build(config, deps, schedule)
        consumer = ConsumerLoop(deps.nc, deps.js, CONSUMER, make_handler(bookings))
        sweep_period = min(1.0, config.timeout_s / 4)
        releases = []
        if config.confirm_by is not None:  # CLINIC_CONFIRM_BY: confirm or release
            unconfirmed = Releases(
                bookings, store, schedule, config.timezone, config.confirm_by, config.first_reminder
            )
            releases.append(bootstrap.every(RELEASE_SWEEP_S, unconfirmed.sweep, stop, "release-sweeper"))
        no_shows = NoShows(bookings, store, deps.js, schedule, config.timezone, config.no_show_after)
        await bootstrap.serve(
            server,
            stop,
            consumers=[consumer],
            duties=[
                bootstrap.every(1.0, bookings.relay_outbox, stop, "outbox-relay"),
                bootstrap.every(0.05, store.flush_done, stop, "outbox-cleanup"),
                bootstrap.every(sweep_period, bookings.time_out_overdue, stop, "timeout-sweeper"),
                bootstrap.every(NO_SHOW_SWEEP_S, no_shows.sweep, stop, "no-show-sweeper"),
                *releases,
            ],
            after_stop=[
                bookings.finish_publishing,
                store.flush_done,
                schedule_channel.close,
            ],
        )
