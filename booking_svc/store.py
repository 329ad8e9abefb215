"""Bookings in Redis (append-only file on): records, indexes and the outbox.

Every change is one Lua script, so a booking and its outbox messages move together or not at all.
Updates are compare-and-set on the record's version. (Places — capacity, tokens, time intervals —
belong to schedule_svc; docs/architecture.md says why.)
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis

from clinic.v1 import saga_pb2
from clinic_common import lua, redis_io
from clinic_common.errors import Conflict, InvalidArgument, Unavailable

from .domain import Transition

PENDING_KEY = "bookings:pending"
OUTBOX_KEY = "outbox"
OUTBOX_DUE_KEY = "outbox:due"

# The scripts, in booking_svc/store_*.lua (loaded once, here).
_CREATE = lua.source("booking_svc", "store_create")
_COMMIT = lua.source("booking_svc", "store_commit")

# Each key of a family is "<prefix>:<name>": a booking's record, and the indexes of bookings by
# request id, patient, appointment date, doctor and reference.
booking_key, request_key, patient_key, date_key, doctor_key, reference_key = map(
    redis_io.key_family,
    ["booking", *(f"bookings:{index}" for index in ("request", "patient", "date", "doctor", "reference"))],
)

REFERENCE_TAKEN = "~"  # what the create script answers when the drawn reference is already someone's
FSYNC_PROBE_KEY = "bookings:fsync"
WAITAOF_TIMEOUT_MS = 2000


def outbox_id(record: saga_pb2.BookingRecord) -> str:
    return f"{record.booking.id}:{record.version}"


def _batch(t: Transition) -> bytes:
    return saga_pb2.OutboxBatch(messages=t.outbox).SerializeToString() if t.outbox else b""


class BookingStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._done: list[str] = []
        self._create = redis_io.batched_script(redis, _CREATE)
        self._commit = redis_io.batched_script(redis, _COMMIT)
        self._commit_direct = redis.register_script(_COMMIT)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

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
                    date_key(b.appointment_date),
                    doctor_key(b.doctor_id or "-"),
                    reference_key(b.reference or "-"),
                ],
                args=[
                    b.id,
                    t.record.SerializeToString(),
                    now_ms,
                    outbox_id(t.record),
                    _batch(t),
                    "1" if b.request_id else "0",
                    max_pending,
                    "1" if b.doctor_id else "0",
                    "1" if b.reference else "0",
                ],
            )
        ).decode()

    async def commit(self, t: Transition, now_ms: int, *, durable: bool = False) -> Transition:
        """Apply a transition if nobody changed the booking since it was read (else Conflict).

        `durable`: on the disk before this returns (see `sync`), not within appendfsync's second."""
        b = t.record.booking
        # A moved booking is listed under its new date and doctor too; the old entries stay and
        # ListBookings' filter (on the record) leaves it out of them.
        indexes = [date_key(b.appointment_date)] if t.reindex else []
        if t.reindex and b.doctor_id:
            indexes.append(doctor_key(b.doctor_id))
        keys = [booking_key(b.id), PENDING_KEY, OUTBOX_KEY, OUTBOX_DUE_KEY, *indexes]
        args = [
            t.record.version - 1,
            b.id,
            now_ms,
            t.record.SerializeToString(),
            outbox_id(t.record),
            _batch(t),
            "1" if t.leaves_pending else "0",
            "1" if t.enters_pending else "0",
            b.created_at.ToMilliseconds(),
        ]
        if not durable:
            committed = await self._commit(keys=keys, args=args)
        else:
            # WAITAOF waits for this connection's own writes: the script and the wait share one
            # connection (a pipeline), never the batcher's.
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._commit_direct(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAITAOF", 1, 0, WAITAOF_TIMEOUT_MS)
                committed, fsynced = await pipe.execute(raise_on_error=False)
            if isinstance(committed, Exception):
                raise committed
            if committed:
                _require_fsynced(fsynced)
        if not committed:
            raise Conflict(f"booking {b.id} changed while being updated")
        return t

    async def sync(self) -> None:
        """Everything written so far is fsynced to the append-only file when this returns.

        The file is written in order, so a write of this connection fsynced means every earlier
        write (of any connection) is too: a retried payment that finds its entry already stored
        waits here before it answers, as the first try did."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(FSYNC_PROBE_KEY)
            pipe.execute_command("WAITAOF", 1, 0, WAITAOF_TIMEOUT_MS)
            _, fsynced = await pipe.execute(raise_on_error=False)
        _require_fsynced(fsynced)

    async def id_for_reference(self, reference: str) -> str | None:
        found = await self._redis.get(reference_key(reference))
        return found.decode() if found else None

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

    async def ids_after(self, index: str, after_id: str, count: int) -> list[str]:
        """Up to `count` ids of an index (newest first) after `after_id` ("": from the newest)."""
        start = 0
        if after_id:
            rank = await self._redis.zrevrank(index, after_id)
            if rank is None:
                raise InvalidArgument([("page_token", "not a token from a previous page")])
            start = rank + 1
        return [raw.decode() for raw in await self._redis.zrevrange(index, start, start + count - 1)]

    async def day_records(self, day: str, chunk: int) -> AsyncIterator[saga_pb2.BookingRecord]:
        """Every booking of an appointment date (its index, newest first), read `chunk` at a time."""
        after = ""
        while True:
            ids = await self.ids_after(date_key(day), after, chunk)
            for record in await self.load_many(ids):
                yield record
            if len(ids) < chunk:
                return
            after = ids[-1]

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


def _require_fsynced(reply) -> None:
    if isinstance(reply, Exception):  # e.g. a server without appendonly: it cannot promise the disk
        raise Unavailable(
            f"Redis cannot fsync the write ({reply}); it is stored: retry with the same request_id"
        )
    if not reply or int(reply[0]) < 1:
        raise Unavailable(
            f"Redis did not fsync the write within {WAITAOF_TIMEOUT_MS} ms; it is stored: "
            "retry with the same request_id to confirm it"
        )


def page_token(last_id: str) -> str:
    """A page ends at a booking id, so new bookings never shift a page."""
    return base64.urlsafe_b64encode(last_id.encode()).decode() if last_id else ""


def after_id(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode() if token else ""
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument([("page_token", "not a token from a previous page")]) from None
