"""WatchBooking's stream: the booking's stored events, then live ones, strictly by sequence.

The live listener is registered before the history is read, and every event carries its booking's
sequence (1, 2, 3 ...), so the hand-over has no gap and no duplicate: events are released in
sequence order, anything already sent is skipped, and a hole is filled by reading the stream again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from clinic.v1 import common_pb2
from clinic_common import subjects
from clinic_common.errors import NotFound, ResourceExhausted

from .hub import EventHub, Item, Watcher

FINAL = frozenset(
    {
        common_pb2.BOOKING_STATUS_CONFIRMED,
        common_pb2.BOOKING_STATUS_REJECTED,
        common_pb2.BOOKING_STATUS_CANCELLED,
    }
)
GAP_RECHECK_S = 1.0


class WatcherTooSlow(ResourceExhausted):
    """The client reads slower than events arrive and its buffer filled up."""


class BookingHistory:
    """Reads one booking's events from the stream by subject (direct get: no consumer created)."""

    def __init__(self, js: JetStreamContext, booking_id: str) -> None:
        self._js = js
        self._subject = subjects.event_subject(booking_id)
        self._next_stream_seq = 1

    async def read_new(self) -> list[common_pb2.BookingEvent]:
        events = []
        while True:
            try:
                raw = await self._js.get_msg(
                    subjects.EVENTS_STREAM,
                    seq=self._next_stream_seq,
                    subject=self._subject,
                    next=True,
                    direct=True,
                )
            except NotFoundError:
                return events
            self._next_stream_seq = raw.seq + 1
            events.append(common_pb2.BookingEvent.FromString(raw.data))


async def watch_booking(
    hub: EventHub, js: JetStreamContext, booking_id: str, follow: bool, authorize
) -> AsyncIterator[common_pb2.BookingEvent]:
    watcher = hub.watch_booking(booking_id)
    try:
        history = BookingHistory(js, booking_id)
        waiting: dict[int, common_pb2.BookingEvent] = {}
        # What this instance heard live is complete from sequence 1 for recent bookings; anything
        # missing after it (events still on their way) is filled from the stream as a hole.
        stored = hub.recent(booking_id) or await history.read_new()
        if not stored:
            raise NotFound(f"booking {booking_id} not found")
        authorize(stored[0].patient_id)
        for event in stored:
            waiting[event.sequence] = event
        next_seq = 1
        last_status = None
        caught_up = False  # the stored history is out; from here a final status ends the stream
        while True:
            while next_seq in waiting:
                event = waiting.pop(next_seq)
                next_seq += 1
                last_status = event.status
                yield event
                if caught_up and last_status in FINAL and not follow:
                    return
            if not caught_up:
                caught_up = True
                if not waiting and last_status in FINAL and not follow:
                    return
            event = await _next_live(watcher, waiting, next_seq)
            if event is None:
                if hub.closed:
                    return
                for stored_event in await history.read_new():  # a hole: look in the stream again
                    if stored_event.sequence >= next_seq:
                        waiting[stored_event.sequence] = stored_event
                continue
            if event.sequence >= next_seq:
                waiting[event.sequence] = event
    finally:
        hub.forget(watcher)


async def _next_live(
    watcher: Watcher, waiting: dict[int, common_pb2.BookingEvent], next_seq: int
) -> common_pb2.BookingEvent | None:
    """The next live event; None when the hub closes or a hole needs the stream read again."""
    if watcher.overflowed:
        raise WatcherTooSlow("watcher fell too far behind; watch again")
    timeout = GAP_RECHECK_S if waiting else None
    try:
        return await asyncio.wait_for(watcher.queue.get(), timeout)
    except TimeoutError:
        return None


async def watch_patient(hub: EventHub, patient_id: str, on_live=None) -> AsyncIterator[Item]:
    watcher = hub.watch_patient(patient_id)
    try:
        if on_live is not None:
            await on_live()
        while True:
            if watcher.overflowed:
                raise WatcherTooSlow("watcher fell too far behind; watch again")
            event = await watcher.queue.get()
            if event is None:
                return
            yield event
    finally:
        hub.forget(watcher)
