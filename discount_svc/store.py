"""R2: the daily discount quota in Redis, taken and given back by idempotent Lua scripts.

Per clinic day: `{quota:DAY}:used` counts units taken, `{quota:DAY}:grant:<booking>` remembers what
each booking got (applied, exhausted, released, or closed: released before anything was granted),
and `{quota:DAY}:holders` lists the bookings holding a unit. Every key of a day shares the hash tag
`{quota:DAY}`, so the scripts run on Redis Cluster too. A redelivered or retried script finds the
booking's grant record and answers the same without a second effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from clinic_common import lua, redis_io

RECORD_TTL_S = 40 * 24 * 3600

# The scripts, in discount_svc/store_*.lua (loaded once, here).
_GRANT = lua.source("discount_svc", "store_grant")
_RELEASE = lua.source("discount_svc", "store_release")
_RECONCILE = lua.source("discount_svc", "store_reconcile")


def _tag(day: str) -> str:
    return f"{{quota:{day}}}"


def used_key(day: str) -> str:
    return f"{_tag(day)}:used"


def grant_key(day: str, booking_id: str) -> str:
    return f"{_tag(day)}:grant:{booking_id}"


def holders_key(day: str) -> str:
    return f"{_tag(day)}:holders"


@dataclass(frozen=True)
class QuotaState:
    day: str
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


class QuotaStore:
    def __init__(self, redis: aioredis.Redis, limit: int) -> None:
        self._redis = redis
        self.limit = limit
        self._grant = redis_io.batched_script(redis, _GRANT)
        self._release = redis_io.batched_script(redis, _RELEASE)
        self._reconcile = redis_io.batched_script(redis, _RECONCILE)

    async def grant(self, day: str, booking_id: str) -> str:
        """'applied', 'exhausted', or (booking already finished) 'released' / 'closed'."""
        keys = [used_key(day), grant_key(day, booking_id), holders_key(day)]
        result = await self._grant(keys=keys, args=[self.limit, RECORD_TTL_S, booking_id])
        return result.decode()

    async def release(self, day: str, booking_id: str) -> str:
        """'released' (now or before), or what the booking had instead ('exhausted', 'closed')."""
        keys = [used_key(day), grant_key(day, booking_id), holders_key(day)]
        result = await self._release(keys=keys, args=[RECORD_TTL_S, booking_id])
        return result.decode()

    async def state(self, day: str) -> QuotaState:
        used = await self._redis.get(used_key(day))
        return QuotaState(day, self.limit, int(used or 0))

    async def reset(self, day: str) -> QuotaState:
        await self._redis.set(used_key(day), 0, ex=RECORD_TTL_S)
        return QuotaState(day, self.limit, 0)

    async def holders(self, day: str) -> list[str]:
        return sorted(raw.decode() for raw in await self._redis.smembers(holders_key(day)))

    async def reconcile(self, day: str, repair: bool) -> tuple[int, int]:
        """(used, bookings holding a unit); with repair, set used to the holders' count."""
        used, holders = await self._reconcile(
            keys=[used_key(day), holders_key(day)], args=["1" if repair else "0", RECORD_TTL_S]
        )
        return int(used), int(holders)
