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

from clinic_common import lua, redis_io
from clinic_common.clock import parse_date

KEEP_AFTER_DATE = timedelta(days=30)


# The scripts, in schedule_svc/places_*.lua (loaded once, here).
_RESERVE = lua.source("schedule_svc", "places_helpers", "places_reserve")
_RELEASE = lua.source("schedule_svc", "places_helpers", "places_release")
_EXPIRE = lua.source("schedule_svc", "places_helpers", "places_expire")
_OFFER_ANNOUNCED = lua.source("schedule_svc", "places_offer_announced")
_ACCEPT = lua.source("schedule_svc", "places_accept")
_SET_DAY = lua.source("schedule_svc", "places_helpers", "places_set_day")
_SETTLE = lua.source("schedule_svc", "places_helpers", "places_settle")
_READ_DAY = lua.source("schedule_svc", "places_read_day")


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
