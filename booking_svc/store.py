"""Bookings in Redis (append-only file on): records, indexes, capacity and the outbox.

Every change is one Lua script, so a booking, its outbox messages and its capacity counters move
together or not at all. Updates are compare-and-set on the record's version. (docs/architecture.md
says why Redis and not JetStream KV: capacity is all-or-nothing across several counters.)
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import redis.asyncio as aioredis

from clinic.v1 import saga_pb2
from clinic_common.errors import Conflict, InvalidArgument

from .domain import Transition

PENDING_KEY = "bookings:pending"
OUTBOX_KEY = "outbox"
OUTBOX_DUE_KEY = "outbox:due"

_CREATE = """
-- KEYS: booking, request-id, patient index, pending index, outbox, outbox due
-- ARGV: booking id, record, created ms, outbox id, outbox batch, has request id, max pending (0: none)
if ARGV[6] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
end
local max_pending = tonumber(ARGV[7])
if max_pending > 0 and redis.call('ZCARD', KEYS[4]) >= max_pending then return '' end
if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[1], 'v', 1, 'data', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[4])
return ARGV[1]
"""

_COMMIT = """
-- KEYS: booking, pending index, outbox, outbox due, capacity counters...
-- ARGV: expected version, booking id, now ms, capacity op, n counters, n limits,
--       then per branch: record, outbox id, outbox batch, leaves pending ('1'/'0')
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[5])
local op = ARGV[4]
local branch = 1
if op == 'reserve' then
  for i = 1, n do
    if tonumber(redis.call('GET', KEYS[4 + i]) or '0') >= tonumber(ARGV[5 + i]) then
      branch = 2
      break
    end
  end
  if branch == 1 then
    for i = 1, n do redis.call('INCR', KEYS[4 + i]) end
  end
elseif op == 'release' then
  for i = 1, n do
    if tonumber(redis.call('GET', KEYS[4 + i]) or '0') > 0 then redis.call('DECR', KEYS[4 + i]) end
  end
end
local at = 5 + n + (branch - 1) * 4
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'data', ARGV[at + 1])
if ARGV[at + 3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[at + 2], ARGV[at + 3])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[at + 2])
end
if ARGV[at + 4] == '1' then redis.call('ZREM', KEYS[2], ARGV[2]) end
return branch
"""


def booking_key(booking_id: str) -> str:
    return f"booking:{booking_id}"


def request_key(request_id: str) -> str:
    return f"bookings:request:{request_id}"


def patient_key(patient_id: str) -> str:
    return f"bookings:patient:{patient_id}"


def capacity_key(appointment_date: str, service_id: str) -> str:
    return f"capacity:{appointment_date}:{service_id}"


def outbox_id(record: saga_pb2.BookingRecord) -> str:
    return f"{record.booking.id}:{record.version}"


def _batch(t: Transition) -> bytes:
    return saga_pb2.OutboxBatch(messages=t.outbox).SerializeToString() if t.outbox else b""


class BookingStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._done: list[str] = []
        self._create = redis.register_script(_CREATE)
        self._commit = redis.register_script(_COMMIT)

    async def create(self, t: Transition, now_ms: int, max_pending: int = 0) -> str:
        """Store a new booking; with a request id already used, return that booking's id instead.

        With `max_pending` > 0 and that many sagas already in flight, store nothing and return ""
        (a retried request id still gets its booking: it adds no work)."""
        b = t.record.booking
        return (
            await self._create(
                keys=[
                    booking_key(b.id),
                    request_key(b.request_id),
                    patient_key(b.patient.id),
                    PENDING_KEY,
                    OUTBOX_KEY,
                    OUTBOX_DUE_KEY,
                ],
                args=[
                    b.id,
                    t.record.SerializeToString(),
                    now_ms,
                    outbox_id(t.record),
                    _batch(t),
                    "1" if b.request_id else "0",
                    max_pending,
                ],
            )
        ).decode()

    async def commit(self, t: Transition, now_ms: int) -> Transition:
        """Apply a transition if nobody changed the booking since it was read; returns the branch taken."""
        b = t.record.booking
        branches = [t] + ([t.alternative] if t.alternative else [])
        counters = [capacity_key(b.appointment_date, service_id) for service_id, _ in t.capacity]
        args: list[object] = [t.record.version - 1, b.id, now_ms, t.capacity_op, len(counters)]
        args += [limit for _, limit in t.capacity]
        for branch in branches:
            args += [
                branch.record.SerializeToString(),
                outbox_id(branch.record),
                _batch(branch),
                "1" if branch.leaves_pending else "0",
            ]
        taken = await self._commit(
            keys=[booking_key(b.id), PENDING_KEY, OUTBOX_KEY, OUTBOX_DUE_KEY, *counters], args=args
        )
        if taken == 0:
            raise Conflict(f"booking {b.id} changed while being updated")
        return branches[int(taken) - 1]

    async def load(self, booking_id: str) -> saga_pb2.BookingRecord | None:
        data = await self._redis.hget(booking_key(booking_id), "data")
        return saga_pb2.BookingRecord.FromString(data) if data else None

    async def load_many(self, booking_ids: Sequence[str]) -> list[saga_pb2.BookingRecord]:
        if not booking_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for booking_id in booking_ids:
                pipe.hget(booking_key(booking_id), "data")
            rows = await pipe.execute()
        return [saga_pb2.BookingRecord.FromString(row) for row in rows if row]

    async def page_of_patient(
        self, patient_id: str, page_size: int, page_token: str
    ) -> tuple[list[str], str]:
        """Newest first. The token names the last booking seen, so new bookings never shift a page."""
        key = patient_key(patient_id)
        start = 0
        if page_token:
            try:
                after = base64.urlsafe_b64decode(page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument([("page_token", "not a token from a previous page")]) from None
            rank = await self._redis.zrevrank(key, after)
            if rank is None:
                raise InvalidArgument([("page_token", "not a token from a previous page")])
            start = rank + 1
        ids = [raw.decode() for raw in await self._redis.zrevrange(key, start, start + page_size)]
        more = len(ids) > page_size
        ids = ids[:page_size]
        token = base64.urlsafe_b64encode(ids[-1].encode()).decode() if more else ""
        return ids, token

    # -- outbox ---------------------------------------------------------------------------------

    def outbox_done_later(self, batch_id: str) -> None:
        """Forget a published batch on the next flush: off the hot path, one round trip for many.

        Until then the relay leaves it alone (it only takes batches older than 2 s), and should it
        publish one again, JetStream drops the duplicate by its message id.
        """
        self._done.append(batch_id)

    async def flush_done(self) -> None:
        done, self._done = self._done, []
        try:
            await self.outbox_done(done)
        except Exception:
            self._done.extend(done)
            raise

    async def outbox_done(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(OUTBOX_KEY, *ids)
            pipe.zrem(OUTBOX_DUE_KEY, *ids)
            await pipe.execute()

    async def outbox_due(self, older_than_ms: int, limit: int) -> list[tuple[str, saga_pb2.OutboxBatch]]:
        ids = await self._redis.zrangebyscore(OUTBOX_DUE_KEY, "-inf", older_than_ms, start=0, num=limit)
        if not ids:
            return []
        blobs = await self._redis.hmget(OUTBOX_KEY, ids)
        due = []
        for raw_id, blob in zip(ids, blobs, strict=True):
            if blob is None:
                await self._redis.zrem(OUTBOX_DUE_KEY, raw_id)
                continue
            due.append((raw_id.decode(), saga_pb2.OutboxBatch.FromString(blob)))
        return due

    async def pending_older_than(self, older_than_ms: int, limit: int) -> list[str]:
        ids = await self._redis.zrangebyscore(PENDING_KEY, "-inf", older_than_ms, start=0, num=limit)
        return [raw.decode() for raw in ids]
