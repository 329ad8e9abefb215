"""Builds notification_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import notification_pb2, notification_pb2_grpc
from clinic_common import bootstrap, metrics, tls
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_client import open_channel
from clinic_common.grpc_server import create_server
from clinic_common.logs import get_logger

from . import domain, reminders, sender
from .channels import Channel, ConsoleChannel, EmailChannel, WebhookChannel
from .config import ChannelConfig, NotificationConfig
from .directory import Directory
from .handlers import NotificationServicer
from .hub import EventHub
from .limits import OpenStreams
from .notifier import CONSUMER, VISIT_CONSUMER, CallNotifier, EventNotifier, Teller
from .store import NotificationStore

log = get_logger(__name__)

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


def channels_of(config: ChannelConfig) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    if config.dev_console:
        channels[domain.CONSOLE] = ConsoleChannel()
    if config.smtp_url:
        channels[domain.EMAIL] = EmailChannel(config.smtp_url, config.smtp_from)
    if config.sms_webhook_url:
        channels[domain.SMS] = WebhookChannel(config.sms_webhook_url, config.webhook_secret)
    if config.whatsapp_webhook_url:
        channels[domain.WHATSAPP] = WebhookChannel(config.whatsapp_webhook_url, config.webhook_secret)
    return channels


async def main(stop: asyncio.Event, config: NotificationConfig) -> None:
    metrics.serve(config.metrics_addr, "notification_svc")
    async with bootstrap.connected("notification_svc", config.connections) as deps:
        hub = EventHub()
        await hub.start(deps.nc)
        store = NotificationStore(deps.redis)
        servicer = NotificationServicer(hub, deps.js, OpenStreams(config.max_watch_streams), store)
        server = create_server(
            config.addr,
            [lambda s: notification_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, s)],
            [SERVICE_NAME],
            credentials=tls.server_credentials_from_env(),
            reflect=True,  # the whole public API: an edge may route reflection to any one upstream
        )
        schedule_channel = open_channel(config.schedule_addrs, tls=tls.InternalTls.from_env())
        directory = Directory(schedule_channel)
        enabled = config.channels.enabled
        log.info(
            "notification.channels",
            on=",".join(enabled),
            hint=""
            if len(enabled) > 1
            else "set CLINIC_NOTIFY_DEV=1, CLINIC_SMTP_URL or CLINIC_SMS_WEBHOOK_URL",
        )
        teller = Teller(deps.js, directory, enabled, store)
        kept = reminders.Reminders(deps.js, directory, config.reminders, config.timezone)
        send_spec = sender.consumer_spec(config.backoff_s)
        deliver = sender.Sender(
            store,
            directory,
            channels_of(config.channels),
            domain.Templates(config.templates),
            max_attempts=send_spec.max_deliver,
            confirm=(
                (domain.reminder_kind(config.reminders[0]), config.confirm_by, config.timezone)
                if config.confirm_by is not None and config.reminders
                else None
            ),
        )
        due = reminders.DueReminders(deps.js, teller.tell)
        consumers = [
            ConsumerLoop(deps.nc, deps.js, CONSUMER, EventNotifier(teller, kept).handle),
            ConsumerLoop(deps.nc, deps.js, send_spec, deliver.handle),
            ConsumerLoop(deps.nc, deps.js, reminders.CONSUMER, due.handle),
            ConsumerLoop(deps.nc, deps.js, VISIT_CONSUMER, CallNotifier(store).handle),
        ]
        try:
            await bootstrap.serve(
                server,
                stop,
                consumers=consumers,
                on_stopping=[hub.close],
                after_stop=[schedule_channel.close],
            )
        finally:
            await hub.stop()
