"""The places bookings hold, in Redis: one script reserves them all or none, one gives them back.

Every key of one appointment date shares the hash tag `{places:DATE}` — a booking's places are all
on its date — so both scripts touch one slot and run on Redis Cluster:

- `{places:D}:hold:<booking>`        what the booking got: state held | refused | released | closed,
                                      its token, reason; makes both scripts idempotent per booking
- `{places:D}:svc:<service>`         set of bookings holding a place of that service
- `{places:D}:doc:<doctor>:tokens`   token -> booking (the lowest free number is taken)
- `{places:D}:doc:<doctor>:slots`    booking -> "start,end" minutes (no two overlap)
- `{places:D}:doc:<doctor>:day`      that date's availability: present, note, capacity, start, end

A release that finds no hold records `closed`, so a reservation that arrives after the booking
ended (a timeout racing the request) is refused instead of holding places nobody will free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import redis.asyncio as aioredis

from clinic_common.clock import parse_date

KEEP_AFTER_DATE = timedelta(days=30)

_RESERVE = """
-- KEYS: hold, day, tokens, slots, service sets...
-- ARGV: booking, doctor ('1'/'0'), capacity, day start, day end, start (-1: none), end, expire at,
--       then one capacity per service set
local prior = redis.call('HMGET', KEYS[1], 'state', 'token', 'reason')
if prior[1] then return {prior[1], tonumber(prior[2] or '0'), prior[3] or ''} end
local function refuse(reason)
  redis.call('HSET', KEYS[1], 'state', 'refused', 'reason', reason)
  redis.call('EXPIREAT', KEYS[1], ARGV[8])
  return {'refused', 0, reason}
end
local token, s, e = 0, tonumber(ARGV[6]), tonumber(ARGV[7])
if ARGV[2] == '1' then
  local day = redis.call('HMGET', KEYS[2], 'present', 'capacity', 'start', 'end')
  if day[1] == '0' then return refuse('doctor') end
  local capacity = tonumber(day[2] or ARGV[3])
  for i = 1, capacity do
    if redis.call('HEXISTS', KEYS[3], i) == 0 then token = i break end
  end
  if token == 0 then return refuse('capacity') end
  if s >= 0 then
    if s < tonumber(day[3] or ARGV[4]) or e > tonumber(day[4] or ARGV[5]) then return refuse('slot') end
    for _, taken in ipairs(redis.call('HVALS', KEYS[4])) do
      local ts, te = string.match(taken, '(%d+),(%d+)')
      if s < tonumber(te) and tonumber(ts) < e then return refuse('slot') end
    end
  end
end
for i = 5, #KEYS do
  if redis.call('SCARD', KEYS[i]) >= tonumber(ARGV[4 + i]) then return refuse('capacity') end
end
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[8])
end
if token > 0 then
  redis.call('HSET', KEYS[3], token, ARGV[1])
  redis.call('EXPIREAT', KEYS[3], ARGV[8])
end
if ARGV[2] == '1' and s >= 0 then
  redis.call('HSET', KEYS[4], ARGV[1], s .. ',' .. e)
  redis.call('EXPIREAT', KEYS[4], ARGV[8])
end
redis.call('HSET', KEYS[1], 'state', 'held', 'token', token)
redis.call('EXPIREAT', KEYS[1], ARGV[8])
return {'held', token, ''}
"""

_RELEASE = """
-- KEYS: hold, day, tokens, slots, service sets...   ARGV: booking, expire at
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'held' then
  local token = redis.call('HGET', KEYS[1], 'token')
  if token and token ~= '0' and redis.call('HGET', KEYS[3], token) == ARGV[1] then
    redis.call('HDEL', KEYS[3], token)
  end
  redis.call('HDEL', KEYS[4], ARGV[1])
  for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
  redis.call('HSET', KEYS[1], 'state', 'released')
  return 'released'
end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'closed')
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
  return 'closed'
end
return state
"""


_SET_DAY = """
-- KEYS: day   ARGV: expire at, then field, value pairs
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Request:
    """What one booking asks for on one date."""

    booking_id: str
    day: str
    service_ids: Sequence[str]
    doctor_id: str = ""
    start: int = -1  # minutes since midnight; -1: no interval
    end: int = -1


@dataclass(frozen=True)
class Outcome:
    state: str  # held | refused | released | closed
    token: int = 0
    reason: str = ""  # when refused: doctor | capacity | slot | closed


@dataclass(frozen=True)
class DayState:
    override: dict[str, str]
    tokens_held: int
    intervals: list[tuple[int, int]]


def _tag(day: str) -> str:
    return f"{{places:{day}}}"


def hold_key(day: str, booking_id: str) -> str:
    return f"{_tag(day)}:hold:{booking_id}"


def service_key(day: str, service_id: str) -> str:
    return f"{_tag(day)}:svc:{service_id}"


def doctor_keys(day: str, doctor_id: str) -> list[str]:
    base = f"{_tag(day)}:doc:{doctor_id}"
    return [f"{base}:day", f"{base}:tokens", f"{base}:slots"]


def expire_at(day: str) -> int:
    """Keys of a date live until a month after it."""
    moment = datetime.combine(parse_date(day), time(), tzinfo=UTC) + KEEP_AFTER_DATE
    return int(moment.timestamp())


class PlacesStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._set_day = redis.register_script(_SET_DAY)

    def _keys(self, r: Request) -> list[str]:
        return [hold_key(r.day, r.booking_id), *doctor_keys(r.day, r.doctor_id or "-")] + [
            service_key(r.day, s) for s in r.service_ids
        ]

    async def reserve(
        self, r: Request, service_capacities: Sequence[int], doctor_defaults: tuple[int, int, int] = (0, 0, 0)
    ) -> Outcome:
        """All the places of `r` or none. doctor_defaults: (capacity, day start, day end) of the doctor."""
        capacity, day_start, day_end = doctor_defaults
        state, token, reason = await self._reserve(
            keys=self._keys(r),
            args=[
                r.booking_id,
                "1" if r.doctor_id else "0",
                capacity,
                day_start,
                day_end,
                r.start,
                r.end,
                expire_at(r.day),
                *service_capacities,
            ],
        )
        return Outcome(state.decode(), int(token), reason.decode())

    async def release(self, r: Request) -> str:
        """released (it held places, now free), closed (it held none: later reservations refused), or
        the state already recorded (a redelivery)."""
        return (await self._release(keys=self._keys(r), args=[r.booking_id, expire_at(r.day)])).decode()

    async def day(self, day: str, doctor_id: str) -> DayState:
        day_key, tokens_key, slots_key = doctor_keys(day, doctor_id)
        async with self._redis.pipeline(transaction=False) as pipe:  # a view: a moment apart is fine
            pipe.hgetall(day_key)
            pipe.hlen(tokens_key)
            pipe.hvals(slots_key)
            override, held, slots = await pipe.execute()
        intervals = []
        for raw in slots:
            start, _, end = raw.decode().partition(",")
            intervals.append((int(start), int(end)))
        return DayState({k.decode(): v.decode() for k, v in override.items()}, held, intervals)

    async def set_day(self, day: str, doctor_id: str, fields: dict[str, str | int]) -> None:
        """That date's availability, replaced whole: the last write stands."""
        pairs = [item for field, value in fields.items() for item in (field, value)]
        await self._set_day(keys=[doctor_keys(day, doctor_id)[0]], args=[expire_at(day), *pairs])

    async def service_booked(self, day: str, service_id: str) -> int:
        return await self._redis.scard(service_key(day, service_id))
