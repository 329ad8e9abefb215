"""The queues in Redis, each under its own hash tag `{queue:<doctor_id|general>:<date>}`.

Every change of a queue is one Lua script that updates the visit, takes the queue's next change
sequence and leaves the change in the queue's outbox, so a change is never stored without its event
(the relay publishes the outbox to VISITS). Visits are JSON (cjson) so the scripts can read them.
Requests carry an operation id: a script that redis-py runs again after a lost reply returns the
first answer instead of making a second change.

Keys of one queue (one slot, so it runs on Redis Cluster):
  <tag>:visits   hash  booking_id -> visit JSON
  <tag>:waiting  zset  booking_id scored by position (who CallNext takes next)
  <tag>:pos      the last position handed out
  <tag>:seq      the last change sequence
  <tag>:outbox   hash  sequence -> change JSON not yet known to be in the stream
  <tag>:ops      hash  operation id -> booking id (answers a retried script)
Outside the queues: frontdesk:visit:<booking_id> -> the queue's tag (CompleteVisit and MarkNoShow
name only the booking) and frontdesk:outboxes, the queues whose outbox may hold something.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from clinic.v1 import common_pb2, frontdesk_pb2
from clinic_common import lua, queues, redis_io, subjects

from .domain import QueueId, Transition

OPS_TTL_S = 2 * 24 * 3600
Actor = tuple[str, str]  # (sub, role) of the verified caller whose call made a change
OUTBOXES = "frontdesk:outboxes"

# The scripts, in frontdesk_svc/store_*.lua (loaded once, here).
_CHECK_IN = lua.source("frontdesk_svc", "store_check_in")
_TRANSITION = lua.source("frontdesk_svc", "store_transition")
_SNAPSHOT = lua.source("frontdesk_svc", "store_snapshot")


def tag(queue: QueueId) -> str:
    return queues.queue_tag(queue.doctor_id, queue.day)


def index_key(booking_id: str) -> str:
    return f"frontdesk:visit:{booking_id}"


def _keys(queue_tag: str) -> list[str]:
    return [f"{queue_tag}:{part}" for part in ("visits", "waiting", "pos", "seq", "outbox", "ops")]


def queue_of_tag(queue_tag: str) -> QueueId:
    token, _, day = queue_tag.strip("{}").removeprefix("queue:").rpartition(":")
    return QueueId("" if token == subjects.GENERAL_QUEUE else token, day)


def _ts(ms: str | None) -> Timestamp | None:
    if not ms:
        return None
    ts = Timestamp()
    ts.FromMilliseconds(int(ms))
    return ts


def visit_from_json(raw: bytes | str) -> frontdesk_pb2.Visit:
    v = json.loads(raw)
    return frontdesk_pb2.Visit(
        booking_id=v["booking_id"],
        patient_id=v["patient_id"],
        doctor_id=v["doctor_id"],
        date=v["date"],
        position=int(v["position"]),
        state=int(v["state"]),
        token=int(v.get("token") or 0),
        checked_in_at=_ts(v.get("checked_in_at")),
        called_at=_ts(v.get("called_at")),
        done_at=_ts(v.get("done_at")),
    )


def change_from_json(raw: bytes | str) -> frontdesk_pb2.QueueChange:
    c = json.loads(raw)
    return frontdesk_pb2.QueueChange(
        sequence=int(c["sequence"]),
        kind=int(c["kind"]),
        visit=visit_from_json(json.dumps(c["visit"])),
        occurred_at=_ts(c["at"]),
        actor=common_pb2.Actor(**(c.get("actor") or {})),
    )


@dataclass(frozen=True)
class Outcome:
    """A script's answer: `changed` False means the compare-and-set found another state."""

    changed: bool
    visit: frontdesk_pb2.Visit | None
    sequence: int = 0  # the change made (0: none, or a retried script's first answer)
    leaving: bool = False  # refused: a reschedule is taking the booking out of this queue (or took it)


def _outcome(answer: list) -> Outcome:
    if int(answer[0]) == 2:
        return Outcome(False, None, leaving=True)
    sequence = int(answer[2]) if len(answer) > 2 else 0
    return Outcome(bool(answer[0]), visit_from_json(answer[1]), sequence)


class QueueStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._check_in = redis_io.batched_script(redis, _CHECK_IN)
        self._transition = redis_io.batched_script(redis, _TRANSITION)
        self._snapshot = redis_io.batched_script(redis, _SNAPSHOT)

    async def check_in(
        self, queue: QueueId, visit: frontdesk_pb2.Visit, op_id: str, now_ms: int, actor: Actor = ("", "")
    ) -> Outcome:
        """Stores the visit with the queue's next position, or answers the booking's existing visit;
        refuses (`leaving`) while a reschedule holds the booking's mark in this queue."""
        queue_tag = tag(queue)
        record = {
            "booking_id": visit.booking_id,
            "patient_id": visit.patient_id,
            "doctor_id": visit.doctor_id,
            "date": visit.date,
            "token": visit.token,
            "checked_in_at": str(now_ms),
        }
        await self._redis.set(index_key(visit.booking_id), queue_tag)
        await self._redis.sadd(OUTBOXES, queue_tag)
        answer = await self._check_in(
            keys=[*_keys(queue_tag), queues.leaving_key(queue_tag, visit.booking_id)],
            args=[visit.booking_id, op_id, json.dumps(record), now_ms, OPS_TTL_S, *actor],
        )
        return _outcome(answer)

    async def queue_of(self, booking_id: str) -> QueueId | None:
        queue_tag = await self._redis.get(index_key(booking_id))
        return queue_of_tag(queue_tag.decode()) if queue_tag else None

    async def transition(
        self,
        queue: QueueId,
        booking_id: str,
        move: Transition,
        op_id: str,
        now_ms: int,
        actor: Actor = ("", ""),
    ) -> Outcome | None:
        """The compare-and-set; None when there is no such visit (or, for '' , nobody waits)."""
        queue_tag = tag(queue)
        await self._redis.sadd(OUTBOXES, queue_tag)
        allowed = "," + ",".join(str(s) for s in move.from_states) + ","
        answer = await self._transition(
            keys=_keys(queue_tag),
            args=[booking_id, op_id, allowed, move.to, move.kind, now_ms, move.stamp, OPS_TTL_S, *actor],
        )
        if answer[0] < 0:
            return None
        return _outcome(answer)

    async def snapshot(self, queue: QueueId) -> tuple[int, list[frontdesk_pb2.Visit]]:
        """(last change sequence, visits by position), read in one step."""
        queue_tag = tag(queue)
        answer = await self._snapshot(keys=[f"{queue_tag}:visits", f"{queue_tag}:seq"])
        visits = sorted((visit_from_json(raw) for raw in answer[1:]), key=lambda v: v.position)
        return int(answer[0]), visits

    # The outbox: changes stored but not yet known to be in the stream.
    async def outbox_queues(self) -> list[str]:
        return [raw.decode() for raw in await self._redis.smembers(OUTBOXES)]

    async def pending_one(self, queue_tag: str, sequence: int) -> frontdesk_pb2.QueueChange | None:
        raw = await self._redis.hget(f"{queue_tag}:outbox", str(sequence))
        return change_from_json(raw) if raw else None

    async def pending(self, queue_tag: str) -> list[frontdesk_pb2.QueueChange]:
        rows = await self._redis.hgetall(f"{queue_tag}:outbox")
        return sorted((change_from_json(raw) for raw in rows.values()), key=lambda c: c.sequence)

    async def published(self, queue_tag: str, sequence: int) -> None:
        await self._redis.hdel(f"{queue_tag}:outbox", str(sequence))

    async def mark_pending(self, queue_tag: str) -> None:
        await self._redis.sadd(OUTBOXES, queue_tag)

    async def forget_if_empty(self, queue_tag: str) -> None:
        if not await self._redis.hlen(f"{queue_tag}:outbox"):
            await self._redis.srem(OUTBOXES, queue_tag)
