"""Live fan-out: one core NATS subscription on every booking event, routed to local watchers.

Any instance can serve any watcher: each instance hears every event. The durable history lives in
the BOOKING_EVENTS stream; this hub only carries what happens from now on. A second subscription
hears the check-in queues (VISITS) and hands each visit change to its patient's watchers.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clinic.v1 import common_pb2, frontdesk_pb2
from clinic_common import subjects
from clinic_common.logs import get_logger

log = get_logger(__name__)

WATCHER_BUFFER = 10_000
RECENT_BOOKINGS = 20_000  # bookings whose events this instance keeps for fast replays

Item = common_pb2.BookingEvent | frontdesk_pb2.QueueChange  # what a patient's watcher receives


class Watcher:
    """A queue of live events for one stream; `None` means the hub is closing."""

    def __init__(self, index: dict[str, set[Watcher]], key: str) -> None:
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(WATCHER_BUFFER)
        self.overflowed = False
        self.index = index
        self.key = key

    def offer(self, event: Item | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    def __init__(self) -> None:
        self._by_booking: dict[str, set[Watcher]] = defaultdict(set)
        self._by_patient: dict[str, set[Watcher]] = defaultdict(set)
        self._sub = None
        self._visits_sub = None
        self.closed = False
        # booking id -> events heard live, in arrival order. A replay may use it only when it holds
        # the booking's whole history from sequence 1 (this instance was listening all along).
        self._recent: OrderedDict[str, list[common_pb2.BookingEvent]] = OrderedDict()

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(subjects.EVENTS_SUBJECTS, cb=self._on_message)
        self._visits_sub = await nc.subscribe(subjects.VISITS_SUBJECTS, cb=self._on_visit)

    async def _on_visit(self, msg: Msg) -> None:
        if not self._by_patient:
            return
        try:
            change = frontdesk_pb2.QueueChange.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_visit", subject=msg.subject)
            return
        for watcher in self._by_patient.get(change.visit.patient_id, ()):
            watcher.offer(change)

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = common_pb2.BookingEvent.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_event", subject=msg.subject)
            return
        self._remember(event)
        for watcher in self._by_booking.get(event.booking_id, ()):
            watcher.offer(event)
        for watcher in self._by_patient.get(event.patient_id, ()):
            watcher.offer(event)

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

    def watch_booking(self, booking_id: str) -> Watcher:
        return self._add(self._by_booking, booking_id)

    def watch_patient(self, patient_id: str) -> Watcher:
        return self._add(self._by_patient, patient_id)

    def _add(self, index: dict[str, set[Watcher]], key: str) -> Watcher:
        watcher = Watcher(index, key)
        index[key].add(watcher)
        if self.closed:
            watcher.offer(None)
        return watcher

    def forget(self, watcher: Watcher) -> None:
        watchers = watcher.index.get(watcher.key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del watcher.index[watcher.key]

    @property
    def watchers(self) -> int:
        return sum(len(ws) for ws in self._by_booking.values()) + sum(
            len(ws) for ws in self._by_patient.values()
        )

    def close(self) -> None:
        """End every open stream cleanly (shutdown)."""
        self.closed = True
        for index in (self._by_booking, self._by_patient):
            for watchers in index.values():
                for watcher in watchers:
                    watcher.offer(None)

    async def stop(self) -> None:
        for sub in (self._sub, self._visits_sub):
            if sub is not None:
                await sub.unsubscribe()
