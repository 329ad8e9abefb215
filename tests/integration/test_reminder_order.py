"""Issue 20, reminders scheduled in JetStream: events of one booking handled out of order (two in one
fetched batch run at once, a redelivery after a kill behind what followed it) never let an older
event replace or purge the schedule a newer one set. Found by `make chaos` (2026-12-04: a moved
booking's CONFIRMED handled just after its RESCHEDULED in one batch; both reminders of the new time
were lost, the old ones fired stale and were dropped). Real NATS JetStream, the REMINDERS stream."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import nats

from clinic.v1 import common_pb2 as c
from clinic.v1 import saga_pb2
from clinic_common import subjects
from notification_svc import domain
from notification_svc.reminders import Reminders
from tests.harness import uid

TZ = ZoneInfo("Asia/Kolkata")
OFFSETS = ("2h", "30m")


def event(booking_id: str, sequence: int, kind: int, day: str, start: str) -> c.BookingEvent:
    return c.BookingEvent(
        booking_id=booking_id,
        patient_id="p-1",
        sequence=sequence,
        type=kind,
        status=c.BOOKING_STATUS_CONFIRMED,
        appointment=c.Appointment(date=day, start_time=start, doctor_id="d-1"),
    )


async def scheduled(js, booking_id: str) -> dict[str, int]:
    """The event sequence each reminder kind's schedule is for."""
    found = {}
    for offset in OFFSETS:
        kind = domain.reminder_kind(offset)
        subject = subjects.reminder_schedule_subject(kind, booking_id)
        try:
            raw = await js.get_msg(subjects.REMINDERS_STREAM, subject=subject, direct=True)
        except nats.js.errors.NotFoundError:
            continue
        found[kind] = saga_pb2.ReminderDue.FromString(raw.data).event.sequence
    return found


async def test_an_older_event_never_replaces_or_purges_a_newer_ones_reminders(js):
    reminders = Reminders(js, None, OFFSETS, TZ)  # timed visits: the registry is never asked
    day = (datetime.now(TZ) + timedelta(days=3)).date().isoformat()
    rng = random.Random(5)
    rounds = 20
    for i in range(rounds):
        booking_id = uid("b")
        confirmed = event(booking_id, 4, c.EVENT_TYPE_BOOKING_CONFIRMED, day, "10:00")
        moved = event(booking_id, 5, c.EVENT_TYPE_BOOKING_RESCHEDULED, day, "15:00")
        pair = [reminders.follow(confirmed), reminders.follow(moved)]
        rng.shuffle(pair)
        if i % 2:
            await asyncio.gather(*pair)  # one fetched batch: both at once
        else:
            for step in pair:  # one after the other, in either order (a late redelivery)
                await step
        kinds = {domain.reminder_kind(o): 5 for o in OFFSETS}
        assert await scheduled(js, booking_id) == kinds, f"round {i}: the moved time's reminders"
        # A late copy of an event from before the move (a stale cancellation-like event that drops
        # reminders: here a DOCTOR_UNAVAILABLE of sequence 3) purges nothing of sequence 5's.
        stale = event(booking_id, 3, c.EVENT_TYPE_DOCTOR_UNAVAILABLE, day, "10:00")
        await reminders.follow(stale)
        assert await scheduled(js, booking_id) == kinds, f"round {i}: after a stale drop"
    # A newer drop still drops: the cancellation after the move leaves nothing to fire.
    cancelled = event(booking_id, 6, c.EVENT_TYPE_BOOKING_CANCELLED, day, "15:00")
    cancelled.status = c.BOOKING_STATUS_CANCELLED
    await reminders.follow(cancelled)
    assert await scheduled(js, booking_id) == {}
    assert datetime.now(UTC) < datetime.fromisoformat(day).replace(tzinfo=TZ)  # all were in the future


class CountingLookups:
    """The real JetStream context, counting the schedule lookups (direct gets) made through it."""

    def __init__(self, js) -> None:
        self._js = js
        self.lookups = 0

    def __getattr__(self, name):
        return getattr(self._js, name)

    async def get_msg(self, *args, **kwargs):
        self.lookups += 1
        return await self._js.get_msg(*args, **kwargs)


async def test_a_same_day_confirmation_schedules_what_is_ahead_without_looking_up_what_is_past(js):
    counting = CountingLookups(js)
    reminders = Reminders(counting, None, OFFSETS, TZ)
    start = (datetime.now(TZ) + timedelta(minutes=61)).replace(second=0, microsecond=0)
    booking_id = uid("b")
    day, at = start.date().isoformat(), start.strftime("%H:%M")  # 2h before is past, 30m ahead
    await reminders.follow(event(booking_id, 4, c.EVENT_TYPE_BOOKING_CONFIRMED, day, at))
    assert await scheduled(js, booking_id) == {domain.reminder_kind("30m"): 4}
    assert counting.lookups == 0  # the first appointment: nothing older can hold a schedule
    # The same delivered again: still one schedule, still no lookup for the past one.
    await reminders.follow(event(booking_id, 4, c.EVENT_TYPE_BOOKING_CONFIRMED, day, at))
    assert await scheduled(js, booking_id) == {domain.reminder_kind("30m"): 4}
    # A move to a time whose reminders are all past drops what the confirmation set.
    soon = start - timedelta(minutes=40)
    soon_day, soon_at = soon.date().isoformat(), soon.strftime("%H:%M")
    moved = event(booking_id, 5, c.EVENT_TYPE_BOOKING_RESCHEDULED, soon_day, soon_at)
    await reminders.follow(moved)
    assert await scheduled(js, booking_id) == {}
