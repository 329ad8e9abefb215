"""The mark a reschedule leaves in the check-in queue its booking is leaving.

A check-in (frontdesk_svc) and a reschedule (here) of the same booking race: the desk reads the
booking at its old date and doctor while the move is in flight, and the visit would land in a queue
the booking no longer belongs to; or the reschedule asks whether the patient checked in a moment
before they do. So a reschedule of a CONFIRMED booking first takes `<queue tag>:leaving:<booking>` in
the old queue's slot, in one script that refuses if the visit is already there; frontdesk_svc's
check-in script refuses while the mark stands. One slot, one script each side: never both.

The mark's life (clinic_common/queues.py names the keys):
  taken      with a short lease (`CLAIM_LEASE_MS`): a booking_svc that dies before it commits the move
             request blocks that booking's check-in for at most that long;
  committed  the move request is stored: kept until the answer (`HELD_MS`);
  answered   refused, or moved within the same queue (a new time, same doctor and day): deleted, the
             patient checks in as before; moved to another queue: kept (`GONE_MS`) so a check-in
             that read the booking before the move still cannot land in the queue it left, and any
             mark left in the queue it moves into (from an earlier move out of it) is deleted.
Every step is idempotent: on a redelivered answer it runs again before the booking's commit.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from clinic.v1 import common_pb2, saga_pb2
from clinic_common import lua, queues

CLAIM_LEASE_MS = 30_000
HELD_MS = 36 * 3600 * 1000
GONE_MS = 36 * 3600 * 1000

TAKEN, OURS, CHECKED_IN, HELD_ELSEWHERE = 1, 2, 0, -1

_CLAIM = lua.source("booking_svc", "leaving_claim")
_SETTLE = lua.source("booking_svc", "leaving_settle")


def _tag(booking: common_pb2.Booking) -> str:
    """The check-in queue the booking is in now."""
    return queues.queue_tag(booking.doctor_id, booking.appointment_date)


class LeavingMarks:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._settle = redis.register_script(_SETTLE)

    async def claim(self, booking: common_pb2.Booking, token: str) -> int:
        """TAKEN (now), OURS (by an earlier try with this token), CHECKED_IN or HELD_ELSEWHERE, in the
        queue the booking is in now."""
        tag = _tag(booking)
        keys = [queues.leaving_key(tag, booking.id)]
        args = [booking.id, token, CLAIM_LEASE_MS, queues.visits_key(tag)]
        return int(await self._claim(keys=keys, args=args))

    async def hold(self, booking: common_pb2.Booking, token: str) -> None:
        """The move request is stored: keep the mark until the answer."""
        await self._keep(booking, token, HELD_MS)

    async def drop(self, booking: common_pb2.Booking, token: str) -> None:
        """The move was not asked for after all (refused before it was stored)."""
        await self._keep(booking, token, 0)

    async def settle(self, booking: common_pb2.Booking, move: saga_pb2.Move, moved: bool) -> None:
        """schedule_svc answered `move` for `booking` (still at its old date and doctor)."""
        new = queues.queue_tag(move.target.doctor_id, move.target.appointment_date)
        if not moved or _tag(booking) == new:
            await self._keep(booking, move.leaving, 0)
            return
        await self._keep(booking, move.leaving, GONE_MS)
        await self._redis.delete(queues.leaving_key(new, booking.id))

    async def _keep(self, booking: common_pb2.Booking, token: str, ms: int) -> None:
        """Keep the booking's mark in its current queue for `ms` (0: delete it), if still `token`'s."""
        key = queues.leaving_key(_tag(booking), booking.id)
        await self._settle(keys=[key], args=[token, ms])
