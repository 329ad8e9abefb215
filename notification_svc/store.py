"""What notification_svc owns in Redis (keys under `notification:` / `notifications:`):

- `notification:deliveries:<booking_id>`: one field per delivery (`<kind>:<sequence>:<channel>`),
  its JSON record (masked address, status, attempts, time) for ListDeliveries; `_patient` names
  the booking's patient (who may list them).
- `notification:sent:<idempotency key>`: `1` once the provider accepted the message; a delivery
  whose key is `1` is never sent again, whatever is redelivered or restarted. Before the send it
  holds a claim instead (`claim:<token>`, with a lease): one sender at a time per key; a crashed
  holder's claim lapses, a failed send drops it, the `1` replaces it.
- `notifications:patient:<patient_id>`: the in-app channel, the patient's latest messages.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from clinic.v1 import notification_pb2
from clinic_common import lua, redis_io
from clinic_common.timeutil import to_timestamp

RECORD_TTL_S = 40 * 24 * 3600
KEEP_PER_PATIENT = 200
PATIENT_FIELD = "_patient"

_RECORD_ONCE = lua.source(
    "notification_svc", "store_helpers", "store_record_once"
)  # in-app line, once per key
_MARK_SENT = lua.source(
    "notification_svc", "store_helpers", "store_mark_sent"
)  # the sent mark and its record together
_IN_APP_SENT = lua.source(
    "notification_svc", "store_helpers", "store_in_app_sent"
)  # a booking event's in-app line and mark
_CLAIM = lua.source("notification_svc", "store_claim")  # one sender per key, for a lease
_RELEASE_CLAIM = lua.source("notification_svc", "store_release_claim")  # only the holder's own claim

SENT_MARK = b"1"
CLAIMED, SENT, HELD = "claimed", "sent", "held"

STATUS_NAMES = {
    notification_pb2.DELIVERY_STATUS_SENT: "sent",
    notification_pb2.DELIVERY_STATUS_FAILED: "failed",
    notification_pb2.DELIVERY_STATUS_DEAD: "dead",
}
_STATUS_OF = {name: status for status, name in STATUS_NAMES.items()}


class NotificationStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._record_once = redis_io.batched_script(redis, _RECORD_ONCE)
        self._mark_sent = redis_io.batched_script(redis, _MARK_SENT)
        self._in_app_sent = redis_io.batched_script(redis, _IN_APP_SENT)
        self._claim = redis_io.batched_script(redis, _CLAIM)
        self._release_claim = redis_io.batched_script(redis, _RELEASE_CLAIM)

    async def already_sent(self, key: str) -> bool:
        return await self._redis.get(f"notification:sent:{key}") == SENT_MARK

    async def claim(self, key: str, token: str, lease_s: float) -> str:
        """CLAIMED: the caller may send, alone, for `lease_s`; SENT: it went out already; HELD:
        another sender holds the key now. `token` starts with "claim:" and is the caller's own."""
        outcome = await self._claim(
            keys=[f"notification:sent:{key}"], args=[token, max(1, int(lease_s * 1000))]
        )
        return outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    async def release_claim(self, key: str, token: str) -> bool:
        """The send failed: free the key for a retry (only if `token` still holds it)."""
        return bool(await self._release_claim(keys=[f"notification:sent:{key}"], args=[token]))

    async def record_sent(
        self,
        key: str,
        booking_id: str,
        patient_id: str,
        field: str,
        *,
        kind: str,
        channel: str,
        to: str,
        attempts: int,
    ) -> None:
        """The provider took it: the mark and the SENT record in one script (a crash leaves neither
        or both; with only the mark, a redelivery would skip the message and never say it was sent)."""
        entry = self._entry(kind, channel, to, notification_pb2.DELIVERY_STATUS_SENT, attempts)
        await self._mark_sent(
            keys=[f"notification:sent:{key}", f"notification:deliveries:{booking_id}"],
            args=[RECORD_TTL_S, field, json.dumps(entry), PATIENT_FIELD, patient_id],
        )

    async def record_in_app_sent(
        self, key: str, booking_id: str, patient_id: str, line: str, field: str, *, kind: str, channel: str
    ) -> bool:
        """`record_in_app` and `record_sent` in one script (the notifier's in-app message of a booking
        event: nothing to wait for between the two). True if the line was new."""
        entry = self._entry(kind, channel, "", notification_pb2.DELIVERY_STATUS_SENT, 1)
        return bool(
            await self._in_app_sent(
                keys=[
                    f"notification:{key}",
                    f"notifications:patient:{patient_id}",
                    f"notification:sent:{key}",
                    f"notification:deliveries:{booking_id}",
                ],
                args=[
                    line,
                    RECORD_TTL_S,
                    KEEP_PER_PATIENT,
                    field,
                    json.dumps(entry),
                    PATIENT_FIELD,
                    patient_id,
                ],
            )
        )

    @staticmethod
    def _entry(kind: str, channel: str, to: str, status: int, attempts: int) -> dict:
        return {
            "kind": kind,
            "channel": channel,
            "to": to,
            "status": STATUS_NAMES[status],
            "attempts": attempts,
            "at_ms": int(time.time() * 1000),
        }

    async def record(
        self,
        booking_id: str,
        patient_id: str,
        field: str,
        *,
        kind: str,
        channel: str,
        to: str,
        status: int,
        attempts: int,
    ) -> None:
        """The delivery's latest state (`to` already masked)."""
        entry = self._entry(kind, channel, to, status, attempts)
        key = f"notification:deliveries:{booking_id}"
        async with self._redis.pipeline(transaction=False) as pipe:  # no MULTI in the ACL
            pipe.hset(key, mapping={field: json.dumps(entry), PATIENT_FIELD: patient_id})
            pipe.expire(key, RECORD_TTL_S)
            await pipe.execute()

    async def deliveries(self, booking_id: str) -> tuple[str, list[notification_pb2.Delivery]] | None:
        """The booking's patient and deliveries, oldest first; None if nothing was ever sent."""
        raw = await self._redis.hgetall(f"notification:deliveries:{booking_id}")
        if not raw:
            return None
        patient_id = raw.pop(PATIENT_FIELD.encode(), b"").decode()
        entries = sorted((json.loads(value) for value in raw.values()), key=lambda e: e["at_ms"])
        out = []
        for entry in entries:
            delivery = notification_pb2.Delivery(
                kind=entry["kind"],
                channel=entry["channel"],
                to=entry["to"],
                status=_STATUS_OF[entry["status"]],
                attempts=entry["attempts"],
            )
            delivery.at.CopyFrom(to_timestamp(datetime.fromtimestamp(entry["at_ms"] / 1000, UTC)))
            out.append(delivery)
        return patient_id, out

    async def record_in_app(self, key: str, patient_id: str, line: str) -> bool:
        """The in-app channel: the patient's message list, written once per idempotency key."""
        return bool(
            await self._record_once(
                keys=[f"notification:{key}", f"notifications:patient:{patient_id}"],
                args=[line, RECORD_TTL_S, KEEP_PER_PATIENT],
            )
        )
