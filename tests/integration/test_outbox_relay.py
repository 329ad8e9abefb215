"""booking_svc's outbox relay after a NATS outage, on the real valkey server (a database of its own,
so the running system's relay never sees these batches). The sink stands in for JetStream's
publish: what is tested is the order and the pace of the relay, not the broker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from booking_svc import domain
from booking_svc.saga import Bookings
from booking_svc.store import BookingStore
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.catalog import parse
from clinic_common.clock import FixedClock

IST = ZoneInfo("Asia/Kolkata")
CATALOG = parse(
    {"currency": "INR", "services": [{"id": "gen", "name": "G", "price": "500.00", "daily_capacity": 9}]}
)
RELAY_DB = 7


class Sink:
    """Takes 50 ms per publish; fails the messages whose ids are in `failing`."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.published: list[tuple[str, str]] = []  # (booking id, outbox message id)

    async def publish(self, message: saga_pb2.OutboxMessage) -> None:
        await asyncio.sleep(0.05)
        booking_id = message.subject.rpartition(".")[2]
        if message.msg_id in self.failing:
            raise ConnectionError("stream has no leader")
        self.published.append((booking_id, message.msg_id))


@pytest.fixture
async def relay_redis(servers):
    r = aioredis.Redis.from_url(servers.redis_url, db=RELAY_DB)
    await r.flushdb()
    yield r
    await r.flushdb()
    await r.aclose()


async def _stored_twice(store: BookingStore, booking_id: str, now: datetime) -> None:
    """Created (version 1) and timed out (version 2), neither batch published: both in the outbox."""
    req = booking_pb2.CreateBookingRequest(
        patient=c.Patient(id=f"p-{booking_id}", name="N", gender=c.GENDER_MALE, date_of_birth="1980-01-01"),
        service_ids=["gen"],
    )
    created = domain.create(req, CATALOG, booking_id, now, IST)
    assert await store.create(created, int(now.timestamp() * 1000)) == booking_id
    timed_out = domain.time_out(created.record, now)
    await store.commit(timed_out, int(now.timestamp() * 1000))


async def test_a_backlog_is_relayed_side_by_side_each_booking_in_order(relay_redis):
    now = datetime.now(UTC)
    store = BookingStore(relay_redis)
    ids = [f"relay{i:03d}" for i in range(40)]
    for booking_id in ids:
        await _stored_twice(store, booking_id, now)
    sink = Sink(failing={"relay007:1"})  # one booking's first event cannot be published
    bookings = Bookings(
        store, sink.publish, CATALOG, IST, timeout_s=300, clock=FixedClock(now + timedelta(seconds=5))
    )

    started = time.monotonic()
    relayed = await bookings.relay_outbox(min_age_ms=0)
    took = time.monotonic() - started

    assert relayed == 80
    # 80 batches of 50 ms publishes one after another would take 4 s; side by side, each booking's
    # two batches in a row take about 0.1 s.
    assert took < 1.5, took
    for booking_id in ids:
        sent = [msg_id for b, msg_id in sink.published if b == booking_id]
        if booking_id == "relay007":
            assert "relay007:2" not in sent  # its first batch failed, so its second waits (order kept)
            continue
        created_at, timed_out_at = sent.index(f"{booking_id}:1"), sent.index(f"{booking_id}:2")
        assert created_at < timed_out_at  # version 1's event before version 2's
    await store.flush_done()  # what was published leaves the outbox
    left = await store.outbox_due(int((now + timedelta(seconds=5)).timestamp() * 1000), 100)
    assert sorted(batch_id for batch_id, _ in left) == ["relay007:1", "relay007:2"]
