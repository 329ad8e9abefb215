"""No-shows: after a day ends, a CONFIRMED booking of that day never checked in gets NO_SHOW.

booking_svc is the only writer of a booking's history, so the sweep runs here; the check-in state
is frontdesk_svc's, read from the VISITS stream by the booking's subject (any queue change of the
booking means the patient came). The day ends at the doctor's day_end (the clinic's midnight for a
booking without a doctor), and the sweep waits CLINIC_NO_SHOW_AFTER (default 2h) past it. Every
instance may sweep: the transition is a compare-and-set that marks a booking once.
"""

from __future__ import annotations

from datetime import timedelta
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


class NoShows:
    def __init__(
        self,
        bookings,
        store: stores.BookingStore,
        js: JetStreamContext,
        schedule,
        tz: ZoneInfo,
        after: timedelta,
        clock: Clock | None = None,
    ) -> None:
        self._bookings = bookings
        self._store = store
        self._js = js
        self._schedule = schedule
        self._tz = tz
        self._after = after
        self._clock = clock or Clock()

    async def sweep(self) -> int:
        now = self._clock.now()
        today = clinic_day(now, self._tz)
        marked = 0
        for back in range(DAYS_BACK, -1, -1):
            marked += await self._sweep_day((today - timedelta(days=back)).isoformat(), now)
        return marked

    async def _sweep_day(self, day: str, now) -> int:
        marked, after = 0, ""
        while True:
            ids = await self._store.ids_after(stores.date_key(day), after, CHUNK)
            for record in await self._store.load_many(ids):
                b = record.booking
                if b.status != domain.CONFIRMED or b.attendance:
                    continue
                if not domain.no_show_due(b, await self._day_end(b.doctor_id), self._after, self._tz, now):
                    continue
                if await self._checked_in(b):
                    continue
                if await self._bookings.mark_no_show(b.id):
                    marked += 1
                    log.info("booking.no_show", booking_id=b.id)
            if len(ids) < CHUNK:
                return marked
            after = ids[-1]

    async def _day_end(self, doctor_id: str) -> str:
        if not doctor_id or self._schedule is None:
            return ""
        doctor = await self._schedule.doctor(doctor_id, SELF)
        return doctor.day_end if doctor is not None else ""

    async def _checked_in(self, b) -> bool:
        subject = subjects.visit_subject(b.doctor_id, b.appointment_date, b.id)
        try:
            await self._js.get_msg(subjects.VISITS_STREAM, subject=subject, direct=True)
        except NotFoundError:
            return False
        return True


class Releases:
    """CLINIC_CONFIRM_BY: a booking not confirmed by its deadline is cancelled by the system, so its
    places are offered to the waitlist in time. Sweeps today and the days the deadline reaches."""

    def __init__(
        self,
        bookings,
        store: stores.BookingStore,
        schedule,
        tz: ZoneInfo,
        confirm_by: timedelta,
        first_reminder: timedelta,
        clock: Clock | None = None,
    ) -> None:
        self._bookings = bookings
        self._store = store
        self._schedule = schedule
        self._tz = tz
        self._confirm_by = confirm_by
        self._first_reminder = first_reminder
        self._clock = clock or Clock()

    async def sweep(self) -> int:
        now = self._clock.now()
        today = clinic_day(now, self._tz)
        released = 0
        for ahead in range(self._confirm_by.days + 2):
            day = (today + timedelta(days=ahead)).isoformat()
            after = ""
            while True:
                ids = await self._store.ids_after(stores.date_key(day), after, CHUNK)
                for record in await self._store.load_many(ids):
                    if await self._due(record.booking, now) and await self._bookings.release_unconfirmed(
                        record.booking.id
                    ):
                        released += 1
                        log.info("booking.released_unconfirmed", booking_id=record.booking.id)
                if len(ids) < CHUNK:
                    break
                after = ids[-1]
        return released

    async def _due(self, b, now) -> bool:
        if b.status != domain.CONFIRMED or b.HasField("attendance_confirmed_at"):
            return False
        day_start = ""
        if b.doctor_id and not b.start_time and self._schedule is not None:
            doctor = await self._schedule.doctor(b.doctor_id, SELF)
            day_start = doctor.day_start if doctor is not None else ""
        start = domain.appointment_start(b, day_start, self._tz)
        return domain.release_due(b, start, self._confirm_by, self._first_reminder, now)
