"""Live fan-out: one core NATS subscription on every booking event, routed to local watchers.

Any instance can serve any watcher: each instance hears every event. The durable history lives in
the BOOKING_EVENTS stream; this hub only carries what happens from now on. A second subscription
hears the check-in queues (VISITS) and hands each visit change to its patient's watchers. The
watcher machinery is clinic_common.live; what is this service's own: the keys (a booking, a
patient) and the recent bookings kept for fast replays.
"""

from __future__ import annotations

from collections import OrderedDict

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clinic.v1 import common_pb2, frontdesk_pb2
from clinic_common import subjects
from clinic_common.live import Watcher, Watchers
from clinic_common.logs import get_logger

log = get_logger(__name__)

RECENT_BOOKINGS = 20_000  # bookings whose events this instance keeps for fast replays

Item = common_pb2.BookingEvent | frontdesk_pb2.QueueChange  # what a patient's watcher receives


class EventHub:
    def __init__(self) -> None:
        self._by_booking: Watchers[common_pb2.BookingEvent] = Watchers()
        self._by_patient: Watchers[Item] = Watchers()
        self._sub = None
        self._visits_sub = None
        # booking id -> events heard live, in arrival order. A replay may use it only when it holds
        # the booking's whole history from sequence 1 (this instance was listening all along).
        self._recent: OrderedDict[str, list[common_pb2.BookingEvent]] = OrderedDict()

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(subjects.EVENTS_SUBJECTS, cb=self._on_message)
        self._visits_sub = await nc.subscribe(subjects.VISITS_SUBJECTS, cb=self._on_visit)

    async def _on_visit(self, msg: Msg) -> None:
        if not self._by_patient.listening():
            return
        try:
            change = frontdesk_pb2.QueueChange.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_visit", subject=msg.subject)
            return
        self._by_patient.offer(change.visit.patient_id, change)

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = common_pb2.BookingEvent.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_event", subject=msg.subject)
            return
        self._remember(event)
        self._by_booking.offer(event.booking_id, event)
        self._by_patient.offer(event.patient_id, event)

    def _remember(self, event: common_pb2.BookingEvent) -> None:
        events = self._recent.get(event.booking_id)
        if events is None:
            if event.sequence != 1:
                return  # joined mid-saga: the stream is the only complete history
            events = self._recent[event.booking_id] = []
            if len(self._recent) > RECENT_BOOKINGS:
                self._recent.popitem(last=False)
        events.append(event)

    def recent(self, booking_id: str) -> list[common_pb2.BookingEvent] | None:
        """Every event of the booking from sequence 1 as heard live, or None if not known whole."""
        events = self._recent.get(booking_id)
        if not events:
            return None
        sequences = sorted({e.sequence for e in events})
        if sequences != list(range(1, len(sequences) + 1)):
            return None
        return list(events)

    def watch_booking(self, booking_id: str) -> Watcher[common_pb2.BookingEvent]:
        return self._by_booking.watch(booking_id)

    def watch_patient(self, patient_id: str) -> Watcher[Item]:
        return self._by_patient.watch(patient_id)

    def forget(self, watcher: Watcher) -> None:
        watcher.registry.forget(watcher)

    @property
    def closed(self) -> bool:
        return self._by_booking.closed

    @property
    def watchers(self) -> int:
        return len(self._by_booking) + len(self._by_patient)

    def close(self) -> None:
        """End every open stream cleanly (shutdown)."""
        self._by_booking.close()
        self._by_patient.close()

    async def stop(self) -> None:
        for sub in (self._sub, self._visits_sub):
            if sub is not None:
                await sub.unsubscribe()
