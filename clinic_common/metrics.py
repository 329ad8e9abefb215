"""Prometheus metrics, one registry per process, served on the service's metrics address."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from clinic_common.config import cannot_listen
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


def serve(addr: str) -> None:
    """Expose /metrics on host:port; empty or 'off' disables it."""
    if not addr or addr == "off":
        return
    host, _, port = addr.rpartition(":")
    try:
        start_http_server(int(port), addr=host)
    except OSError:
        raise cannot_listen(addr, "metrics") from None
    log.info("metrics.listening", addr=addr)
