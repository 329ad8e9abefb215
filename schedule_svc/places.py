"""The places bookings hold, in Redis: one script reserves them all or none, one gives them back.

Every key of one appointment date shares the hash tag `{places:DATE}` — a booking's places are all
on its date — so both scripts touch one slot and run on Redis Cluster:

- `{places:D}:hold:<booking>`        what the booking got: state held | refused | released | closed |
                                      waiting | offered | expired | left, its token, reason, waitlist
                                      position, offer expiry and its request; makes every script
                                      idempotent per booking
- `{places:D}:svc:<service>`         set of bookings holding a place of that service
- `{places:D}:doc:<doctor>:tokens`   token -> booking (the lowest free number is taken)
- `{places:D}:doc:<doctor>:slots`    booking -> "start,end" minutes (no two overlap)
- `{places:D}:doc:<doctor>:day`      that date's availability: present, note, capacity, start, end
- `{places:D}:patient:<patient>`     holder -> "start,end" minutes: the patient's intervals on D, with
                                      any doctor (no two overlap: PATIENT_BUSY)
- `{places:D}:waitlist`              waitlisted bookings of the date, in arrival order (`waitseq`)
- `{places:D}:doc:<doctor>:waiting`  that doctor's line (`-`: bookings without a doctor): waiting or
                                      offered bookings; positions and GetDoctorDay.waitlisted count it
- `{places:D}:offers`                offered bookings by offer expiry (ms): the expiry sweeper's work
- `{places:D}:announce`              offers (`o:<id>`) and expiries (`x:<id>`) not yet published
- `{places:waitlist}:days`           dates that ever had a waitlisted booking (the sweeper's index)

The script that frees a place (release, offer expiry) offers it in the same step to the first
waitlisted booking of the date that fits: the places are taken for it (state `offered`), so one
place is never held by two bookings, whatever is redelivered or swept twice.

A release that finds no hold records `closed`, so a reservation that arrives after the booking
ended (a timeout racing the request) is refused instead of holding places nobody will free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import redis.asyncio as aioredis

from clinic_common import redis_io
from clinic_common.clock import parse_date

KEEP_AFTER_DATE = timedelta(days=30)

# Shared by the scripts below. `tag` is the date's hash tag; every key is built from it, so a script
# can take places for a booking other than the one it was called for (the first in the waitlist)
# and still touch one slot. A booking's request (w) is kept in its hold hash for that purpose.
_HELPERS = """
local function doc_key(tag, doctor, part) return tag .. ':doc:' .. doctor .. ':' .. part end
local function line_key(tag, doctor)
  if doctor == '' then doctor = '-' end
  return doc_key(tag, doctor, 'waiting')
end
local function split(text)
  local out = {}
  for item in string.gmatch(text or '', '[^,]+') do out[#out + 1] = item end
  return out
end
local function load_w(hold)
  local h = redis.call('HMGET', hold, 'doctor', 'cap', 'dstart', 'dend', 's', 'e', 'svcs', 'caps', 'pid')
  return {doctor = h[1] or '', capacity = h[2], dstart = h[3], dend = h[4], s = tonumber(h[5] or '-1'),
          e = tonumber(h[6] or '-1'), services = split(h[7]), caps = split(h[8]), pid = h[9] or '',
          replaces = ''}
end
-- A holder is a booking id, or "<booking>~<move>" for the places a reschedule takes.
local function booking_of(holder) return string.match(holder, '^[^~]+') end
local function overlaps(w, taken)
  local ts, te = string.match(taken, '(%d+),(%d+)')
  return w.s < tonumber(te) and tonumber(ts) < w.e
end
-- A doctor's day as resolved (schedule_svc/domain.py resolve_day: availability, leave, weekly plan,
-- defaults), kept in the date's slot by the scripts that resolve it. A day nobody resolved yet
-- (a hold from before) falls back on the date's availability and the doctor's defaults w recorded.
local function day_of(tag, w)
  local r = redis.call('HMGET', doc_key(tag, w.doctor, 'resolved'),
                       'present', 'capacity', 'start', 'end', 'breaks')
  if r[1] then
    return {present = r[1], capacity = tonumber(r[2]), s = tonumber(r[3]), e = tonumber(r[4]),
            breaks = r[5] or ''}
  end
  local d = redis.call('HMGET', doc_key(tag, w.doctor, 'day'), 'present', 'capacity', 'start', 'end')
  return {present = d[1] or '1', capacity = tonumber(d[2] or w.capacity), s = tonumber(d[3] or w.dstart),
          e = tonumber(d[4] or w.dend), breaks = ''}
end
-- The token w would get (0: no doctor), or nil and why not: doctor | capacity | hours | slot | busy.
-- Outside the hours or across a break is 'hours' (domain.places_fit states the same rule).
-- w.replaces: the holder a reschedule moves from; what it holds counts as free for w (it goes next).
local function fits(tag, w, id)
  local token = 0
  if w.doctor ~= '' then
    local day = day_of(tag, w)
    if day.present == '0' then return nil, 'doctor' end
    local tokens = doc_key(tag, w.doctor, 'tokens')
    for i = 1, day.capacity do
      local holder = redis.call('HGET', tokens, i)
      if not holder or (w.replaces ~= '' and holder == w.replaces) then token = i break end
    end
    if token == 0 then return nil, 'capacity' end
    if w.s >= 0 then
      if w.s < day.s or w.e > day.e then return nil, 'hours' end
      for bs, be in string.gmatch(day.breaks, '(%d+)-(%d+)') do
        if w.s < tonumber(be) and tonumber(bs) < w.e then return nil, 'hours' end
      end
      local slots = redis.call('HGETALL', doc_key(tag, w.doctor, 'slots'))
      for i = 1, #slots, 2 do
        if slots[i] ~= w.replaces and overlaps(w, slots[i + 1]) then return nil, 'slot' end
      end
      -- Patient busy: the patient's intervals on this date, with any doctor (not this booking's own).
      if w.pid ~= '' then
        local mine = booking_of(id)
        local busy = redis.call('HGETALL', tag .. ':patient:' .. w.pid)
        for i = 1, #busy, 2 do
          if booking_of(busy[i]) ~= mine and overlaps(w, busy[i + 1]) then return nil, 'busy' end
        end
      end
    end
  end
  for i, service in ipairs(w.services) do
    local set = tag .. ':svc:' .. service
    local used = redis.call('SCARD', set)
    if w.replaces ~= '' and redis.call('SISMEMBER', set, w.replaces) == 1 then used = used - 1 end
    if used >= tonumber(w.caps[i]) then return nil, 'capacity' end
  end
  return token
end
-- The day as the caller resolved it, if it is not older than what the slot has seen: the count of
-- writes to the date's availability and leave (n) must match, and the doctor's revision (rev: plans,
-- defaults, retirement) must not be behind. Otherwise 'stale': the caller resolves again.
local function resolved_fresh(key, n, rev)
  local cur = redis.call('HMGET', key, 'n', 'rev')
  return tonumber(cur[1] or '0') == tonumber(n) and tonumber(cur[2] or '-1') <= tonumber(rev)
end
local function keep_resolved(key, n, rev, day, expire)
  redis.call('HSET', key, 'n', n, 'rev', rev, 'present', day[1], 'capacity', day[2], 'start', day[3],
             'end', day[4], 'breaks', day[5])
  redis.call('EXPIREAT', key, expire)
end
local function take(tag, id, w, token, expire)
  for _, service in ipairs(w.services) do
    redis.call('SADD', tag .. ':svc:' .. service, id)
    redis.call('EXPIREAT', tag .. ':svc:' .. service, expire)
  end
  if token > 0 then
    redis.call('HSET', doc_key(tag, w.doctor, 'tokens'), token, id)
    redis.call('EXPIREAT', doc_key(tag, w.doctor, 'tokens'), expire)
  end
  if w.doctor ~= '' and w.s >= 0 then
    redis.call('HSET', doc_key(tag, w.doctor, 'slots'), id, w.s .. ',' .. w.e)
    redis.call('EXPIREAT', doc_key(tag, w.doctor, 'slots'), expire)
    if w.pid ~= '' then
      redis.call('HSET', tag .. ':patient:' .. w.pid, id, w.s .. ',' .. w.e)
      redis.call('EXPIREAT', tag .. ':patient:' .. w.pid, expire)
    end
  end
end
local function free(tag, id, w, token)
  if w.doctor ~= '' then
    local tokens = doc_key(tag, w.doctor, 'tokens')
    if token > 0 and redis.call('HGET', tokens, token) == id then redis.call('HDEL', tokens, token) end
    redis.call('HDEL', doc_key(tag, w.doctor, 'slots'), id)
  end
  if w.pid ~= '' then redis.call('HDEL', tag .. ':patient:' .. w.pid, id) end
  for _, service in ipairs(w.services) do redis.call('SREM', tag .. ':svc:' .. service, id) end
end
-- The first waitlisted booking that fits now gets the places, held for it until now + offer_ms;
-- returns its id ('' when none fits). 'o:<id>' in announce until the offer is published.
local function offer_next(tag, now, offer_ms, expire)
  local queue = tag .. ':waitlist'
  for _, id in ipairs(redis.call('ZRANGE', queue, 0, 199)) do
    local hold = tag .. ':hold:' .. id
    if redis.call('HGET', hold, 'state') ~= 'waiting' then
      redis.call('ZREM', queue, id)
    else
      local w = load_w(hold)
      local token = fits(tag, w, id)
      if token then
        take(tag, id, w, token, expire)
        local until_ms = now + offer_ms
        redis.call('HSET', hold, 'state', 'offered', 'token', token, 'expires', until_ms)
        redis.call('ZREM', queue, id)
        redis.call('ZADD', tag .. ':offers', until_ms, id)
        redis.call('ZADD', tag .. ':announce', now, 'o:' .. id)
        redis.call('EXPIREAT', tag .. ':offers', expire)
        redis.call('EXPIREAT', tag .. ':announce', expire)
        return id
      end
    end
  end
  return ''
end
"""

_RESERVE = (
    _HELPERS
    + """
-- KEYS: hold, day, tokens, slots, service sets... (named for the cluster; built again from the tag)
-- ARGV: booking, doctor ('' none), capacity, day start, day end, start (-1: none), end, expire at,
--       waitlist ('1'/'0'), service ids (a,b), their capacities (n,m), tag, patient id ('' none),
--       the holder a reschedule moves from ('' none),
--       n, rev (-1: no resolution given), resolved present, capacity, start, end, breaks
local prior = redis.call('HMGET', KEYS[1], 'state', 'token', 'reason', 'position')
if prior[1] then return {prior[1], tonumber(prior[2] or '0'), prior[3] or '', tonumber(prior[4] or '0')} end
local tag, expire = ARGV[12], ARGV[8]
if ARGV[2] ~= '' and tonumber(ARGV[15]) >= 0 then
  local key = doc_key(tag, ARGV[2], 'resolved')
  if not resolved_fresh(key, ARGV[15], ARGV[16]) then return {'stale', 0, '', 0} end
  keep_resolved(key, ARGV[15], ARGV[16], {ARGV[17], ARGV[18], ARGV[19], ARGV[20], ARGV[21]}, expire)
end
local w = {doctor = ARGV[2], capacity = ARGV[3], dstart = ARGV[4], dend = ARGV[5], s = tonumber(ARGV[6]),
           e = tonumber(ARGV[7]), services = split(ARGV[10]), caps = split(ARGV[11]), pid = ARGV[13] or '',
           replaces = ARGV[14] or ''}
local request = {'doctor', ARGV[2], 'cap', ARGV[3], 'dstart', ARGV[4], 'dend', ARGV[5], 's', ARGV[6],
                 'e', ARGV[7], 'svcs', ARGV[10], 'caps', ARGV[11], 'pid', w.pid}
local token, reason = fits(tag, w, ARGV[1])
if token then
  take(tag, ARGV[1], w, token, expire)
  redis.call('HSET', KEYS[1], 'state', 'held', 'token', token, unpack(request))
  redis.call('EXPIREAT', KEYS[1], expire)
  return {'held', token, '', 0}
end
-- Full, or the time taken: a place like that can free up, so a booking that asked waits for it.
-- An absent doctor or a time outside the doctor's hours will not, so those are refused.
if ARGV[9] == '1' and (reason == 'capacity' or reason == 'slot') then
  local seq = redis.call('INCR', tag .. ':waitseq')
  redis.call('ZADD', tag .. ':waitlist', seq, ARGV[1])
  local line = line_key(tag, ARGV[2])
  redis.call('SADD', line, ARGV[1])
  local position = redis.call('SCARD', line)
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'reason', reason, 'position', position, unpack(request))
  for _, key in ipairs({KEYS[1], tag .. ':waitseq', tag .. ':waitlist', line}) do
    redis.call('EXPIREAT', key, expire)
  end
  return {'waiting', 0, reason, position}
end
if reason == 'hours' then reason = 'slot' end
redis.call('HSET', KEYS[1], 'state', 'refused', 'reason', reason)
redis.call('EXPIREAT', KEYS[1], expire)
return {'refused', 0, reason, 0}
"""
)

_RELEASE = (
    _HELPERS
    + """
-- KEYS: hold, day, tokens, slots, service sets...   ARGV: booking, expire at, tag, now ms, offer ms
-- Returns {state, the booking now offered the freed places or ''}.
local state = redis.call('HGET', KEYS[1], 'state')
local tag, now, offer_ms = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if state == 'held' or state == 'offered' then
  local token = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
  if state == 'held' then  -- a hold from before requests were kept in it names its keys in KEYS
    if token > 0 and redis.call('HGET', KEYS[3], token) == ARGV[1] then redis.call('HDEL', KEYS[3], token) end
    redis.call('HDEL', KEYS[4], ARGV[1])
    for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
    local pid = redis.call('HGET', KEYS[1], 'pid')
    if pid and pid ~= '' then redis.call('HDEL', tag .. ':patient:' .. pid, ARGV[1]) end
  else
    local w = load_w(KEYS[1])
    free(tag, ARGV[1], w, token)
    redis.call('ZREM', tag .. ':offers', ARGV[1])
    redis.call('SREM', line_key(tag, w.doctor), ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'state', 'released')
  return {'released', offer_next(tag, now, offer_ms, ARGV[2])}
end
if state == 'waiting' then
  redis.call('ZREM', tag .. ':waitlist', ARGV[1])
  redis.call('SREM', line_key(tag, redis.call('HGET', KEYS[1], 'doctor') or ''), ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'left')
  return {'left', ''}
end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'closed')
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
  return {'closed', ''}
end
return {state, ''}
"""
)

_EXPIRE = (
    _HELPERS
    + """
-- KEYS: hold   ARGV: booking, tag, now ms, offer ms, expire at
-- An offer past its time gives its places back and on to the next in line, once: compare-and-set
-- on the hold's state, so instances sweeping together (or an AcceptOffer racing) cannot both win.
local h = redis.call('HMGET', KEYS[1], 'state', 'expires', 'token')
local tag, now = ARGV[2], tonumber(ARGV[3])
if h[1] ~= 'offered' or tonumber(h[2]) > now then return {h[1] or '', ''} end
-- An offer nobody has been told of yet (its announcement still waits, e.g. NATS without a stream
-- leader) does not run out: its time starts when it is published (see _OFFER_ANNOUNCED).
if redis.call('ZSCORE', tag .. ':announce', 'o:' .. ARGV[1]) then return {'offered', ''} end
local w = load_w(KEYS[1])
free(tag, ARGV[1], w, tonumber(h[3] or '0'))
redis.call('ZREM', tag .. ':offers', ARGV[1])
redis.call('SREM', line_key(tag, w.doctor), ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'expired')
redis.call('ZADD', tag .. ':announce', now, 'x:' .. ARGV[1])
return {'expired', offer_next(tag, now, tonumber(ARGV[4]), ARGV[5])}
"""
)

_OFFER_ANNOUNCED = """
-- KEYS: hold   ARGV: booking, tag, now ms, offer ms
-- About to publish an offer: it runs for offer ms from now (never less than it had), so a patient
-- told late still gets the whole time. Returns the state, token and the offer's end.
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'expires')
if h[1] ~= 'offered' then return {h[1] or '', 0, 0} end
local until_ms = math.max(tonumber(h[3] or '0'), tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'expires', until_ms)
redis.call('ZADD', ARGV[2] .. ':offers', until_ms, ARGV[1])
return {'offered', tonumber(h[2] or '0'), until_ms}
"""

_ACCEPT = """
-- KEYS: hold   ARGV: booking, tag, now ms
-- The offered places become held, unless the offer ran out first (even if not swept yet).
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'expires', 'doctor')
if h[1] == 'held' then return {'held', tonumber(h[2] or '0')} end
if h[1] == 'offered' and tonumber(h[3]) > tonumber(ARGV[3]) then
  local doctor = h[4] or ''
  if doctor == '' then doctor = '-' end
  redis.call('HSET', KEYS[1], 'state', 'held')
  redis.call('ZREM', ARGV[2] .. ':offers', ARGV[1])
  redis.call('SREM', ARGV[2] .. ':doc:' .. doctor .. ':waiting', ARGV[1])
  return {'held', tonumber(h[2] or '0')}
end
return {h[1] or 'none', 0}
"""

_SET_DAY = (
    _HELPERS
    + """
-- KEYS: the input (the date's availability or its leave), resolved, tokens, slots
-- ARGV: expire at, n as read, rev, the day resolved with this input (present, capacity, start, end,
--       breaks; present '' when not resolved), collect ('1'/'0'), tag, then the input's field, value pairs
-- Replaces the input whole and the resolved day with it; with collect, answers the bookings that
-- hold a token of the day (id, token, interval), in the same step, so none is missed.
if not resolved_fresh(KEYS[2], ARGV[2], ARGV[3]) then return {'stale'} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
if ARGV[4] == '' then  -- no resolution given: the next reservation resolves the day again
  redis.call('HDEL', KEYS[2], 'present', 'capacity', 'start', 'end', 'breaks')
  redis.call('HSET', KEYS[2], 'n', tonumber(ARGV[2]) + 1)
  redis.call('EXPIREAT', KEYS[2], ARGV[1])
else
  local resolved = {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]}
  keep_resolved(KEYS[2], tonumber(ARGV[2]) + 1, ARGV[3], resolved, ARGV[1])
end
local out = {'set'}
if ARGV[9] == '1' then
  local tokens = redis.call('HGETALL', KEYS[3])
  for i = 1, #tokens, 2 do
    local id = tokens[i + 1]
    if redis.call('HGET', ARGV[10] .. ':hold:' .. id, 'state') == 'held' then
      out[#out + 1] = id
      out[#out + 1] = tokens[i]
      out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
    end
  end
end
return out
"""
)


_SETTLE = (
    _HELPERS
    + """
-- KEYS: resolved   ARGV: expire at, n, rev, present, capacity, start, end, breaks
-- Keep a resolution of the day unless the slot has moved past it (1), or answer stale (0). After
-- it, every script of this slot that judges a booking (fits) sees this day or a newer one.
if not resolved_fresh(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
keep_resolved(KEYS[1], ARGV[2], ARGV[3], {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]}, ARGV[1])
return 1
"""
)

_READ_DAY = """
-- KEYS: day, tokens, slots, leave, resolved   (read only: one doctor's date at one moment)
return {redis.call('HGETALL', KEYS[1]), redis.call('HLEN', KEYS[2]), redis.call('HVALS', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), redis.call('HGET', KEYS[5], 'n') or '0'}
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
    patient_id: str = ""  # set: the interval must not overlap the patient's others that date


WAITLIST_DAYS_KEY = "{places:waitlist}:days"


@dataclass(frozen=True)
class Outcome:
    state: str  # held | refused | waiting (and, from a prior call: released | closed | offered ...)
    token: int = 0
    reason: str = ""  # when refused (or waiting): doctor | capacity | slot | closed
    position: int = 0  # when waiting: its place in line


@dataclass(frozen=True)
class Offer:
    booking_id: str
    state: str  # offered, or what it became since (held, expired, released)
    token: int
    expires_ms: int


@dataclass(frozen=True)
class DayState:
    override: dict[str, str]
    tokens_held: int
    intervals: list[tuple[int, int]]
    leave: dict[str, str] | None = None
    n: int = 0  # writes to the date's availability and leave so far (the reserve script checks it)


@dataclass(frozen=True)
class Resolved:
    """A resolved day (domain.DayPlan) with what it was resolved from: n (DayState.n) and the
    doctor's revision. The scripts take it only if neither moved on since."""

    present: bool
    capacity: int
    start: int
    end: int
    breaks: str  # domain.encode_breaks
    n: int
    revision: int

    def args(self) -> list[str | int]:
        return [
            self.n,
            self.revision,
            "1" if self.present else "0",
            self.capacity,
            self.start,
            self.end,
            self.breaks,
        ]


@dataclass(frozen=True)
class Affected:
    booking_id: str
    token: int
    start: int  # -1: no interval


_NO_RESOLUTION = [-1, -1, "1", 0, 0, 0, ""]


def _tag(day: str) -> str:
    return f"{{places:{day}}}"


def hold_key(day: str, booking_id: str) -> str:
    return f"{_tag(day)}:hold:{booking_id}"


def tag_of(day: str) -> str:
    return _tag(day)


def offers_key(day: str) -> str:
    return f"{_tag(day)}:offers"


def announce_key(day: str) -> str:
    return f"{_tag(day)}:announce"


def line_key(day: str, doctor_id: str) -> str:
    return f"{_tag(day)}:doc:{doctor_id or '-'}:waiting"


def service_key(day: str, service_id: str) -> str:
    return f"{_tag(day)}:svc:{service_id}"


def doctor_keys(day: str, doctor_id: str) -> list[str]:
    base = f"{_tag(day)}:doc:{doctor_id}"
    return [f"{base}:day", f"{base}:tokens", f"{base}:slots"]


def leave_key(day: str, doctor_id: str) -> str:
    return f"{_tag(day)}:doc:{doctor_id}:leave"


def resolved_key(day: str, doctor_id: str) -> str:
    return f"{_tag(day)}:doc:{doctor_id}:resolved"


def expire_at(day: str) -> int:
    """Keys of a date live until a month after it."""
    moment = datetime.combine(parse_date(day), time(), tzinfo=UTC) + KEEP_AFTER_DATE
    return int(moment.timestamp())


class PlacesStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._reserve = redis_io.batched_script(redis, _RESERVE)
        self._release = redis_io.batched_script(redis, _RELEASE)
        self._set_day = redis_io.batched_script(redis, _SET_DAY)
        self._expire = redis_io.batched_script(redis, _EXPIRE)
        self._accept = redis_io.batched_script(redis, _ACCEPT)
        self._offer_announced = redis_io.batched_script(redis, _OFFER_ANNOUNCED)
        self._read_day = redis_io.batched_script(redis, _READ_DAY)
        self._settle = redis_io.batched_script(redis, _SETTLE)

    def _keys(self, r: Request) -> list[str]:
        return [hold_key(r.day, r.booking_id), *doctor_keys(r.day, r.doctor_id or "-")] + [
            service_key(r.day, s) for s in r.service_ids
        ]

    async def reserve(
        self,
        r: Request,
        service_capacities: Sequence[int],
        doctor_defaults: tuple[int, int, int] = (0, 0, 0),
        waitlist: bool = False,
        replaces: str = "",
        resolved: Resolved | None = None,
    ) -> Outcome:
        """All the places of `r` or none. doctor_defaults: (capacity, day start, day end) of the doctor.
        With `waitlist`, a booking that finds the day full (or its time taken) waits in line.
        `replaces`: the holder a reschedule moves from (same date): its token, interval and service
        places count as free for `r`, since they go as soon as `r` holds.
        With `resolved`, the doctor's day is that one (state `stale`: resolve again and retry)."""
        capacity, day_start, day_end = doctor_defaults
        if waitlist:  # before the script: any date with an offer is in the sweeper's index
            await self._redis.sadd(WAITLIST_DAYS_KEY, r.day)
        state, token, reason, position = await self._reserve(
            keys=self._keys(r),
            args=[
                r.booking_id,
                r.doctor_id,
                capacity,
                day_start,
                day_end,
                r.start,
                r.end,
                expire_at(r.day),
                "1" if waitlist else "0",
                ",".join(r.service_ids),
                ",".join(str(c) for c in service_capacities),
                _tag(r.day),
                r.patient_id,
                replaces,
                *(resolved.args() if resolved else _NO_RESOLUTION),
            ],
        )
        return Outcome(state.decode(), int(token), reason.decode(), int(position))

    async def release(self, r: Request, now_ms: int = 0, offer_ms: int = 0) -> str:
        """released (it held places, now free), closed (it held none: later reservations refused),
        left (it was waiting), or the state already recorded (a redelivery)."""
        return (await self.release_offering(r, now_ms, offer_ms))[0]

    async def release_offering(self, r: Request, now_ms: int, offer_ms: int) -> tuple[str, str]:
        """As `release`, plus the booking the freed places were offered to ('' none)."""
        state, offered = await self._release(
            keys=self._keys(r), args=[r.booking_id, expire_at(r.day), _tag(r.day), now_ms, offer_ms]
        )
        return state.decode(), offered.decode()

    async def expire_offer(self, day: str, booking_id: str, now_ms: int, offer_ms: int) -> tuple[str, str]:
        """('expired', next offered id or '') if the offer ran out and this call ended it, else the
        hold's state and ''."""
        state, offered = await self._expire(
            keys=[hold_key(day, booking_id)],
            args=[booking_id, _tag(day), now_ms, offer_ms, expire_at(day)],
        )
        return state.decode(), offered.decode()

    async def accept(self, day: str, booking_id: str, now_ms: int) -> tuple[str, int]:
        """('held', token) when the offer was taken in time (or already was), else (state, 0)."""
        state, token = await self._accept(
            keys=[hold_key(day, booking_id)], args=[booking_id, _tag(day), now_ms]
        )
        return state.decode(), int(token)

    async def offer_to_announce(self, day: str, booking_id: str, now_ms: int, offer_ms: int) -> Offer:
        """The offer as it will be published: its time starts now (see _OFFER_ANNOUNCED)."""
        state, token, expires = await self._offer_announced(
            keys=[hold_key(day, booking_id)], args=[booking_id, _tag(day), now_ms, offer_ms]
        )
        return Offer(booking_id, state.decode(), int(token), int(expires))

    async def waitlist_days(self) -> list[str]:
        return sorted(raw.decode() for raw in await self._redis.smembers(WAITLIST_DAYS_KEY))

    async def forget_days(self, days: Sequence[str]) -> None:
        if days:
            await self._redis.srem(WAITLIST_DAYS_KEY, *days)

    async def offers_due(self, day: str, now_ms: int, limit: int = 100) -> list[str]:
        ids = await self._redis.zrangebyscore(offers_key(day), "-inf", now_ms, start=0, num=limit)
        return [raw.decode() for raw in ids]

    async def unannounced(self, day: str, older_than_ms: int, limit: int = 100) -> list[str]:
        found = await self._redis.zrangebyscore(announce_key(day), "-inf", older_than_ms, start=0, num=limit)
        return [raw.decode() for raw in found]

    async def announced(self, day: str, *members: str) -> None:
        if members:
            await self._redis.zrem(announce_key(day), *members)

    async def waitlisted(self, day: str, doctor_id: str) -> int:
        return await self._redis.scard(line_key(day, doctor_id))

    async def day(self, day: str, doctor_id: str) -> DayState:
        override, held, slots, leave, n = await self._read_day(
            keys=[*doctor_keys(day, doctor_id), leave_key(day, doctor_id), resolved_key(day, doctor_id)],
            args=[],
        )
        return DayState(_pairs(override), int(held), _intervals(slots), _pairs(leave) or None, int(n))

    async def days(self, day: str, doctor_ids: Sequence[str]) -> dict[str, DayState]:
        """Many doctors' states on one date (a view: FindSlots)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for doctor_id in doctor_ids:
                day_key, tokens_key, slots_key = doctor_keys(day, doctor_id)
                pipe.hgetall(day_key)
                pipe.hlen(tokens_key)
                pipe.hvals(slots_key)
                pipe.hgetall(leave_key(day, doctor_id))
            rows = await pipe.execute()
        out = {}
        for i, doctor_id in enumerate(doctor_ids):
            override, held, slots, leave = rows[4 * i : 4 * i + 4]
            out[doctor_id] = DayState(
                _text(override), held, _intervals(slots), _text(leave) if leave else None
            )
        return out

    async def set_input(
        self,
        day: str,
        doctor_id: str,
        kind: str,
        fields: dict[str, str | int],
        resolved: Resolved,
        collect: bool,
        resolve: bool = True,
    ) -> list[Affected] | None:
        """Replace the date's availability (kind `day`) or leave (`leave`) and its resolved day; None
        when the resolution is stale (read again). With collect: the bookings holding its tokens."""
        _, tokens_key, slots_key = doctor_keys(day, doctor_id)
        target = doctor_keys(day, doctor_id)[0] if kind == "day" else leave_key(day, doctor_id)
        pairs = [item for field, value in fields.items() for item in (field, value)]
        reply = await self._set_day(
            keys=[target, resolved_key(day, doctor_id), tokens_key, slots_key],
            args=[
                expire_at(day),
                *resolved.args()[:2],
                *(resolved.args()[2:] if resolve else ["", "", "", "", ""]),
                "1" if collect else "0",
                _tag(day),
                *pairs,
            ],
        )
        if reply[0] == b"stale":
            return None
        affected = []
        for i in range(1, len(reply), 3):
            interval = reply[i + 2].decode()
            start = int(interval.partition(",")[0]) if interval else -1
            affected.append(Affected(reply[i].decode(), int(reply[i + 1]), start))
        return affected

    async def settle(self, day: str, doctor_id: str, resolved: Resolved) -> bool:
        """Keep `resolved` as the doctor's day on that date (False: stale, resolve again). A script
        of the date's slot that judges a booking with `fits` (a move, say) then sees this day or a
        newer one: availability and leave writes replace it in the same step as themselves."""
        kept = await self._settle(
            keys=[resolved_key(day, doctor_id)], args=[expire_at(day), *resolved.args()]
        )
        return bool(kept)

    async def set_day(self, day: str, doctor_id: str, fields: dict[str, str | int]) -> None:
        """That date's availability, replaced whole, without resolving the day (the next reservation
        does, from the doctor's defaults it passes): for callers that have no doctor record."""
        state = await self.day(day, doctor_id)
        unresolved = Resolved(True, 0, 0, 0, "", state.n, -1)
        await self.set_input(day, doctor_id, "day", fields, unresolved, False, resolve=False)

    async def service_booked(self, day: str, service_id: str) -> int:
        return await self._redis.scard(service_key(day, service_id))


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _intervals(slots: list[bytes]) -> list[tuple[int, int]]:
    intervals = []
    for raw in slots:
        start, _, end = raw.decode().partition(",")
        intervals.append((int(start), int(end)))
    return intervals


def _pairs(flat: list[bytes]) -> dict[str, str]:
    """HGETALL as a script returns it (field, value, field, value ...)."""
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
