"""WatchBooking's stream: the booking's stored events, then live ones, strictly by sequence.

The replay-then-live machinery (no gap, no duplicate, holes filled from the stream) is
clinic_common.live; what is this service's own: the key (the booking), where its history comes
from (what this instance heard whole, else BOOKING_EVENTS), and the stop rule (a final status,
unless the caller follows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext

from clinic.v1 import common_pb2
from clinic_common import live, subjects
from clinic_common.errors import NotFound
from clinic_common.live import WatcherTooSlow

from .hub import EventHub, Item

__all__ = ["FINAL", "BookingHistory", "WatcherTooSlow", "watch_booking", "watch_patient"]

FINAL = frozenset(
    {
        common_pb2.BOOKING_STATUS_CONFIRMED,
        common_pb2.BOOKING_STATUS_REJECTED,
        common_pb2.BOOKING_STATUS_CANCELLED,
    }
)


class BookingHistory(live.StreamHistory[common_pb2.BookingEvent]):
    """One booking's events as stored in BOOKING_EVENTS."""

    def __init__(self, js: JetStreamContext, booking_id: str) -> None:
        super().__init__(
            js, subjects.EVENTS_STREAM, subjects.event_subject(booking_id), common_pb2.BookingEvent.FromString
        )


async def watch_booking(
    hub: EventHub, js: JetStreamContext, booking_id: str, follow: bool, authorize
) -> AsyncIterator[common_pb2.BookingEvent]:
    watcher = hub.watch_booking(booking_id)
    try:
        history = BookingHistory(js, booking_id)
        # What this instance heard live is complete from sequence 1 for recent bookings; anything
        # missing after it (events still on their way) is filled from the stream as a hole.
        stored = hub.recent(booking_id) or await history.read_new()
        if not stored:
            raise NotFound(f"booking {booking_id} not found")
        authorize(stored[0].patient_id)
        done = (lambda _event: False) if follow else (lambda event: event.status in FINAL)
        async for event in live.in_sequence(watcher, history, stored, 1, done=done):
            yield event
    finally:
        hub.forget(watcher)


async def watch_patient(hub: EventHub, patient_id: str, on_live=None) -> AsyncIterator[Item]:
    watcher = hub.watch_patient(patient_id)
    try:
        if on_live is not None:
            await on_live()
        async for item in live.live_only(watcher):
            yield item
    finally:
        hub.forget(watcher)
