"""No-shows: after a day ends, a CONFIRMED booking of that day never checked in gets NO_SHOW.

booking_svc is the only writer of a booking's history, so the sweep runs here; the check-in state
is frontdesk_svc's, read from the VISITS stream by the booking's subject (any queue change of the
booking means the patient came). The day ends at the doctor's day_end (the clinic's midnight for a
booking without a doctor), and the sweep waits CLINIC_NO_SHOW_AFTER (default 2h) past it. Every
instance may sweep: the transition is a compare-and-set that marks a booking once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from clinic_common import subjects
from clinic_common.clock import Clock, clinic_day
from clinic_common.logs import get_logger
from clinic_common.principal import STAFF, Principal

from . import domain
from . import store as stores

log = get_logger(__name__)

DAYS_BACK = 3  # a sweeper down for a weekend still marks Friday's
CHUNK = 200
SELF = Principal(sub="booking_svc", role=STAFF)


@dataclass
class NoShows:
    bookings: Any  # booking_svc.saga.Bookings
    store: stores.BookingStore
    js: JetStreamContext
    schedule: Any  # booking_svc.schedule_client.ScheduleClient, or None
    tz: ZoneInfo
    after: timedelta
    clock: Clock = field(default_factory=Clock)

    async def sweep(self) -> int:
        now = self.clock.now()
        today = clinic_day(now, self.tz)
        marked = 0
        for back in range(DAYS_BACK, -1, -1):
            marked += await self._sweep_day((today - timedelta(days=back)).isoformat(), now)
        return marked

    async def _sweep_day(self, day: str, now) -> int:
        marked = 0
        async for record in self.store.day_records(day, CHUNK):
            b = record.booking
            if b.status != domain.CONFIRMED or b.attendance:
                continue
            if not domain.no_show_due(b, await self._day_end(b), self.after, self.tz, now):
                continue
            if await self._checked_in(b):
                continue
            if await self.bookings.mark_no_show(b.id):
                marked += 1
                log.info("booking.no_show", booking_id=b.id)
        return marked

    async def _day_end(self, b) -> str:
        """When the doctor's day ends on the booking's date (its plan, not the doctor's usual hours)."""
        if not b.doctor_id or self.schedule is None:
            return ""
        return (await self.schedule.day_hours(b.doctor_id, b.appointment_date, SELF))[1]

    async def _checked_in(self, b) -> bool:
        subject = subjects.visit_subject(b.doctor_id, b.appointment_date, b.id)
        try:
            await self.js.get_msg(subjects.VISITS_STREAM, subject=subject, direct=True)
        except NotFoundError:
            return False
        return True


@dataclass
class Releases:
    """CLINIC_CONFIRM_BY: a booking not confirmed by its deadline is cancelled by the system, so its
    places are offered to the waitlist in time. Sweeps today and the days the deadline reaches."""

    bookings: Any
    store: stores.BookingStore
    schedule: Any
    tz: ZoneInfo
    confirm_by: timedelta
    first_reminder: timedelta
    clock: Clock = field(default_factory=Clock)

    async def sweep(self) -> int:
        now = self.clock.now()
        today = clinic_day(now, self.tz)
        released = 0
        for ahead in range(self.confirm_by.days + 2):
            day = (today + timedelta(days=ahead)).isoformat()
            async for record in self.store.day_records(day, CHUNK):
                if await self._due(record.booking, now) and await self.bookings.release_unconfirmed(
                    record.booking.id
                ):
                    released += 1
                    log.info("booking.released_unconfirmed", booking_id=record.booking.id)
        return released

    async def _due(self, b, now) -> bool:
        if b.status != domain.CONFIRMED or b.HasField("attendance_confirmed_at"):
            return False
        day_start = ""
        if b.doctor_id and not b.start_time and self.schedule is not None:
            day_start = (await self.schedule.day_hours(b.doctor_id, b.appointment_date, SELF))[0]
        start = domain.appointment_start(b, day_start, self.tz)
        return domain.release_due(b, start, self.confirm_by, self.first_reminder, now)
