"""What to tell, learnt from the booking events themselves (no step of the saga waits for it).

`EventNotifier` reads BOOKING_EVENTS through its own durable consumer. For each event the patient
is told about it writes the in-app message at once (a Redis write that cannot fail at a provider,
once per idempotency key: a redelivered event writes nothing new), queues one DeliveryJob per other
channel (NOTIFICATIONS, Nats-Msg-Id = the delivery's idempotency key, so a redelivered event queues
nothing new) and sets or drops the booking's reminders. JetStream subject filters see only
`booking.events.<id>`, not the event's kind, so the consumer hears every event and skips the untold
ones after decoding (a few microseconds each).

`CallNotifier` tells a patient, once per visit, that the doctor calls them in (VISITS).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from clinic.v1 import common_pb2, frontdesk_pb2, saga_pb2
from clinic_common import metrics, nats_io, subjects
from clinic_common.consumer import ConsumerSpec, Poison
from clinic_common.logs import get_logger

from . import domain
from .directory import Directory
from .reminders import Reminders
from .store import NotificationStore

log = get_logger(__name__)

CONSUMER = ConsumerSpec.of(
    subjects.NOTIFICATION_CONSUMER,
    "notification_svc: what to tell each patient, and their reminders (booking events)",
)

VISIT_CONSUMER = ConsumerSpec.of(
    subjects.VISIT_NOTIFY_CONSUMER,
    "notification_svc: tells a patient they are called to the consultation room (VISITS)",
)


class Teller:
    """Tells a patient on each channel the clinic runs and the patient allows: the in-app message of
    a booking event here and now, every other channel (and a reminder's rendered text) through a
    delivery job. Queuing the in-app record as a job cost a publish, a delivery, a claim and an ack
    per told event for a write that has no provider to wait for (docs/performance.md)."""

    def __init__(
        self,
        js: JetStreamContext,
        directory: Directory,
        channels: tuple[str, ...],
        store: NotificationStore,
    ) -> None:
        self._js = js
        self._directory = directory
        self._channels = channels
        self._store = store

    async def tell(self, kind: str, event: common_pb2.BookingEvent) -> list[str]:
        consent = None
        if any(channel in domain.NEEDS_CONSENT for channel in self._channels):
            patient = await self._directory.patient(event.patient_id)
            consent = patient.contact if patient is not None else None
        chosen = domain.channels_for(self._channels, consent)
        for channel in chosen:
            reminder = kind.startswith(domain.REMINDER_PREFIX)  # its text is rendered: a job
            if channel == domain.APP and not reminder:
                await self._in_app(kind, event)
                continue
            job = saga_pb2.DeliveryJob(booking_id=event.booking_id, kind=kind, channel=channel, event=event)
            await nats_io.publish(
                self._js,
                subjects.send_subject(channel, event.booking_id),
                job.SerializeToString(),
                domain.idempotency_key(event.booking_id, kind, event.sequence, channel),
            )
        return chosen

    async def _in_app(self, kind: str, event: common_pb2.BookingEvent) -> None:
        """The event's own text in the patient's messages, and its SENT delivery, once per key."""
        key = domain.idempotency_key(event.booking_id, kind, event.sequence, domain.APP)
        started = time.monotonic()
        await self._store.record_in_app_sent(
            key,
            event.booking_id,
            event.patient_id,
            f"{event.booking_id}: {event.message}",
            f"{kind}:{event.sequence}:{domain.APP}",
            kind=kind,
            channel=domain.APP,
        )
        metrics.NOTIFICATION_SECONDS.labels(domain.APP).observe(time.monotonic() - started)
        metrics.NOTIFICATIONS.labels(domain.APP, "sent").inc()
        log.info("notification.sent", booking_id=event.booking_id, kind=kind, channel=domain.APP)


class EventNotifier:
    def __init__(self, teller: Teller, reminders: Reminders, clock=None) -> None:
        self._teller = teller
        self._reminders = reminders
        self._now = clock or (lambda: datetime.now(UTC))

    async def handle(self, msg: Msg) -> None:
        event = common_pb2.BookingEvent.FromString(msg.data)
        if not event.booking_id or event.sequence < 1:
            raise Poison("event without booking id or sequence")
        kind = domain.KINDS.get(event.type)
        if kind is None:
            return
        if self._now() - event.occurred_at.ToDatetime(UTC) > domain.MAX_EVENT_AGE:
            return  # a notifier started on an old history does not tell last month's news
        await self._reminders.follow(event)
        await self._teller.tell(kind, event)


class CallNotifier:
    """Tells the patient, once per visit, that the doctor calls them in (KIND_CALLED on VISITS),
    in the same per-patient in-app records as the booking messages."""

    def __init__(self, store: NotificationStore) -> None:
        self._store = store

    async def handle(self, msg: Msg) -> None:
        change = frontdesk_pb2.QueueChange.FromString(msg.data)
        visit = change.visit
        if not visit.booking_id or not visit.patient_id or change.sequence < 1:
            raise Poison("queue change without booking, patient or sequence")
        if change.kind != frontdesk_pb2.QueueChange.KIND_CALLED:
            return
        first = await self._store.record_in_app(
            f"{visit.booking_id}:called",
            visit.patient_id,
            f"{visit.booking_id}: Please go to the consultation room (queue position {visit.position})",
        )
        if first:
            log.info("notification.called_in", booking_id=visit.booking_id)
