"""Reminders kept by JetStream itself: message schedules (ADR-51, nats-server >= 2.12).

A CONFIRMED (or moved) appointment publishes one schedule per reminder kind on
`reminders.schedule.<kind>.<booking_id>` with `Nats-Schedule: @at <UTC time>` and a target
`reminders.due.<kind>.<booking_id>`; the server publishes the body there at that time. The subject
is the schedule's identity, so a reschedule's re-publish replaces it and a cancellation purges the
booking's schedules. A reminder that fires anyway (a purge raced it, the event consumer lagged)
is checked against the booking's history first: any told event after the one that set the
appointment means its time no longer holds, and it is dropped.

Events of one booking can be handled out of order (two in one fetched batch run at once; a
redelivery after a kill comes after what followed it), so an older event must never replace or
purge the schedule of a newer one, or the reminders of the time that holds are lost. Each schedule
carries the event it was set for; a publish expects the subject's last message to be the one it
read (`Nats-Expected-Last-Subject-Sequence`, a compare-and-set in the stream) and gives way to a
newer event's schedule; a purge removes only up to the message it judged (`seq`), so a schedule
published meanwhile stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from clinic.v1 import common_pb2, saga_pb2
from clinic_common import metrics, nats_io, subjects
from clinic_common.consumer import ConsumerSpec, Poison
from clinic_common.errors import Unavailable
from clinic_common.logs import get_logger

from . import domain
from .directory import Directory

log = get_logger(__name__)

SCHEDULE_HEADER = "Nats-Schedule"
TARGET_HEADER = "Nats-Schedule-Target"
EXPECTED_LAST_HEADER = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's answer when the subject moved on since it was read
SCHEDULE_ATTEMPTS = 8

CONSUMER = ConsumerSpec.of(
    subjects.REMINDER_CONSUMER,
    "notification_svc: a reminder is due (fired by its JetStream message schedule)",
)

Tell = Callable[[str, common_pb2.BookingEvent], Awaitable[list[str]]]


def schedule_headers(at: datetime, kind: str, booking_id: str) -> dict[str, str]:
    return {
        SCHEDULE_HEADER: f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        TARGET_HEADER: subjects.reminder_due_subject(kind, booking_id),
    }


class Reminders:
    def __init__(
        self,
        js: JetStreamContext,
        directory: Directory,
        offsets: tuple[str, ...],
        tz: ZoneInfo,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._js = js
        self._directory = directory
        self._offsets = offsets
        self._tz = tz
        self._now = clock or (lambda: datetime.now(UTC))

    async def follow(self, event: common_pb2.BookingEvent) -> None:
        """Set the reminders of an appointment just confirmed or moved; drop them on anything else
        (never those of a newer event: see the module's docstring)."""
        booking_id = event.booking_id
        kinds = [domain.reminder_kind(offset) for offset in self._offsets]
        if event.type not in domain.SETS_APPOINTMENT or event.status != common_pb2.BOOKING_STATUS_CONFIRMED:
            for kind in kinds:
                await self._drop(subjects.reminder_schedule_subject(kind, booking_id), event.sequence)
            return
        day_start = await self._day_start(event.appointment)
        start = domain.appointment_start(event.appointment, day_start, self._tz)
        if start is None:
            return
        due = domain.reminder_times(start, self._offsets, self._now())
        for kind, at in due.items():
            subject = subjects.reminder_schedule_subject(kind, booking_id)
            if at is None:  # too late for this one (booked or moved close to the start)
                if event.type != common_pb2.EVENT_TYPE_BOOKING_CONFIRMED:
                    await self._drop(subject, event.sequence)
                # A confirmation is a booking's first appointment: no older event set a schedule
                # to drop (and a newer one's stays), so a same-day booking skips the lookup.
                continue
            body = saga_pb2.ReminderDue(booking_id=booking_id, kind=kind, event=event)
            if await self._schedule(subject, body, at):
                metrics.REMINDERS.labels("scheduled").inc()

    async def _schedule(self, subject: str, body: saga_pb2.ReminderDue, at: datetime) -> bool:
        """Publish the schedule unless the subject holds this event's or a newer one's: False then."""
        expected = 0  # the usual case, a first appointment: nothing on the subject yet
        headers = schedule_headers(at, body.kind, body.booking_id)
        msg_id = f"{body.booking_id}:{body.kind}:{body.event.sequence}:schedule"
        for _ in range(SCHEDULE_ATTEMPTS):
            try:
                await nats_io.publish(
                    self._js,
                    subject,
                    body.SerializeToString(),
                    msg_id,
                    headers={**headers, EXPECTED_LAST_HEADER: str(expected)},
                )
                return True
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
            current = await self._current(subject)
            if current is not None and current[1] >= body.event.sequence:
                return False
            expected = current[0] if current is not None else 0
        raise Unavailable(f"the schedule on {subject} kept changing; the event is tried again")

    async def _drop(self, subject: str, sequence: int) -> None:
        """Purge the schedule on `subject` unless it is a newer event's; only up to the message
        judged, so one published meanwhile stays."""
        current = await self._current(subject)
        if current is None or current[1] > sequence:
            return
        try:
            await self._js.purge_stream(subjects.REMINDERS_STREAM, subject=subject, seq=current[0] + 1)
        except NotFoundError:
            pass

    async def _current(self, subject: str) -> tuple[int, int] | None:
        """(stream sequence, event sequence) of the schedule on `subject`, or None."""
        try:
            raw = await self._js.get_msg(subjects.REMINDERS_STREAM, subject=subject, direct=True)
        except NotFoundError:
            return None
        return raw.seq, saga_pb2.ReminderDue.FromString(raw.data).event.sequence

    async def _day_start(self, appointment: common_pb2.Appointment) -> str:
        if appointment.start_time:  # a timed visit: the day's hours do not matter
            return ""
        return await self._directory.day_start(appointment.doctor_id, appointment.date)


class DueReminders:
    """Handles reminders.due.<kind>.<id>: tells the patient unless the time no longer holds."""

    def __init__(self, js: JetStreamContext, tell: Tell) -> None:
        self._js = js
        self._tell = tell

    async def handle(self, msg: Msg) -> None:
        due = saga_pb2.ReminderDue.FromString(msg.data)
        if not due.booking_id or not due.kind.startswith(domain.REMINDER_PREFIX) or due.event.sequence < 1:
            raise Poison("reminder without booking, kind or event")
        if await self._superseded(due.booking_id, due.event.sequence):
            metrics.REMINDERS.labels("stale").inc()
            log.info("reminder.stale", booking_id=due.booking_id, kind=due.kind)
            return
        await self._tell(due.kind, due.event)
        metrics.REMINDERS.labels("fired").inc()
        log.info("reminder.due", booking_id=due.booking_id, kind=due.kind)

    async def _superseded(self, booking_id: str, sequence: int) -> bool:
        """True if any told event (cancelled, moved ...) followed the one that set the appointment."""
        subject = subjects.event_subject(booking_id)
        seq = 1
        while True:
            try:
                raw = await self._js.get_msg(
                    subjects.EVENTS_STREAM, seq=seq, subject=subject, next=True, direct=True
                )
            except NotFoundError:
                return False
            seq = raw.seq + 1
            event = common_pb2.BookingEvent.FromString(raw.data)
            if event.sequence > sequence and event.type in domain.KINDS:
                return True
