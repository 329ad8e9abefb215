"""Prometheus metrics, defined once here, each family owned by the services that update it.

`serve(addr, service)` exposes only that service's families (and the process/Python collectors),
so no service shows a figure it never updates (notification_svc has no quota gauge reading 0).
"""

from __future__ import annotations

import sys

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from clinic_common.config import SERVICES, cannot_listen
from clinic_common.logs import get_logger

log = get_logger(__name__)

GRPC_REQUESTS = Counter(
    "clinic_grpc_requests_total", "gRPC calls by method and status code", ["method", "code"]
)
BOOKINGS = Counter("clinic_bookings_total", "Bookings that reached a final status", ["status", "reason"])
BOOKINGS_SHED = Counter(
    "clinic_bookings_shed_total", "CreateBooking refused: CLINIC_MAX_PENDING_BOOKINGS sagas in flight"
)
SAGA_SECONDS = Histogram(
    "clinic_saga_duration_seconds",
    "From CreateBooking to the booking's first final status",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
QUOTA_USED = Gauge("clinic_quota_used", "Discount quota units used today")
QUOTA_LIMIT = Gauge("clinic_quota_limit", "Daily discount quota (DAILY_DISCOUNT_QUOTA)")
QUOTA_GRANTS = Counter("clinic_quota_grants_total", "Quota script results", ["result"])
CONSUMER_MESSAGES = Counter(
    "clinic_consumer_messages_total", "Messages handled by durable consumers", ["consumer", "result"]
)
CONSUMER_REDELIVERIES = Counter(
    "clinic_consumer_redeliveries_total", "Messages delivered more than once", ["consumer"]
)
CONSUMER_PENDING = Gauge("clinic_consumer_pending", "Messages waiting or unacknowledged", ["consumer"])
DEAD_LETTERS = Counter("clinic_dead_letters_total", "Messages sent to the dead-letter stream", ["consumer"])
OUTBOX_RELAYED = Counter("clinic_outbox_relayed_total", "Outbox batches published late by the relay")
WATCH_STREAMS_REFUSED = Counter(
    "clinic_watch_streams_refused_total", "Watch streams refused: the caller already holds the most allowed"
)
NOTIFICATIONS = Counter(
    "clinic_notifications_total",
    "Delivery attempts to patients by channel and result (sent, failed, dead); never an address",
    ["channel", "result"],
)
NOTIFICATION_SECONDS = Histogram(
    "clinic_notification_send_seconds",
    "How long a channel's provider took to accept a message",
    ["channel"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REMINDERS = Counter("clinic_reminders_total", "Reminders scheduled, fired and dropped as stale", ["result"])


EVERY_SERVICE = frozenset(SERVICES)
WITH_CONSUMERS = EVERY_SERVICE - {"gateway"}  # a consumer family with no samples is left out too
OWNERS: dict[str, frozenset[str]] = {
    family.name: frozenset(owners)
    for metric, owners in (
        (GRPC_REQUESTS, EVERY_SERVICE),
        (BOOKINGS, {"booking_svc"}),
        (BOOKINGS_SHED, {"booking_svc"}),
        (SAGA_SECONDS, {"booking_svc"}),
        (OUTBOX_RELAYED, {"booking_svc"}),
        (WATCH_STREAMS_REFUSED, {"notification_svc"}),
        (NOTIFICATIONS, {"notification_svc"}),
        (NOTIFICATION_SECONDS, {"notification_svc"}),
        (REMINDERS, {"notification_svc"}),
        (QUOTA_USED, {"discount_svc"}),
        (QUOTA_LIMIT, {"discount_svc"}),
        (QUOTA_GRANTS, {"discount_svc"}),
        (CONSUMER_MESSAGES, WITH_CONSUMERS),
        (CONSUMER_REDELIVERIES, WITH_CONSUMERS),
        (CONSUMER_PENDING, WITH_CONSUMERS),
        (DEAD_LETTERS, WITH_CONSUMERS),
    )
    for family in metric.describe()
}


class _Owned:
    """The process's families that `service` owns; labelled families only once they have samples."""

    def __init__(self, service: str) -> None:
        self.service = service

    def collect(self):
        for family in REGISTRY.collect():
            owners = OWNERS.get(family.name)
            if owners is None or (self.service in owners and family.samples):
                yield family


def registry_for(service: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Owned(service))
    return registry


def _running_service() -> str | None:
    """The package run with `python -m <service>`, when the caller does not say."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = spec.name.partition(".")[0] if spec and spec.name else ""
    return name or None


def serve(addr: str, service: str | None = None) -> None:
    """Expose `service`'s families on host:port at /metrics; empty or 'off' disables it."""
    if not addr or addr == "off":
        return
    service = service or _running_service()
    host, _, port = addr.rpartition(":")
    try:
        start_http_server(int(port), addr=host, registry=registry_for(service) if service else REGISTRY)
    except OSError:
        raise cannot_listen(addr, "metrics") from None
    log.info("metrics.listening", addr=addr, service=service)
