"""Reschedules for the fault run (issue 19): a share of the doctors' CONFIRMED bookings is moved while
the faults run, many of them into contested times, and each move is followed to its answer.

Checked at a quiet moment afterwards (chaos.py, waitlist.py): every token and interval is held by
exactly the holder the booking's record names (its id, or "<id>~<move>" after a move), so no
booking holds two sets of places or none; every move asked got exactly one answer.
"""

from __future__ import annotations

from collections import Counter

import grpc

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c
from tests.harness import Client, uid

ANSWERS = (c.EVENT_TYPE_BOOKING_RESCHEDULED, c.EVENT_TYPE_RESCHEDULE_REFUSED)
NOT_MOVABLE = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


def holder(b: c.Booking) -> str:
    """The id the booking's places are held under: moves are numbered 1, 2 ... in the order asked,
    each answered once (RESCHEDULED or REFUSED), so the last RESCHEDULED's rank names the holder."""
    number = moved = 0
    for e in b.history:
        if e.type in ANSWERS:
            number += 1
            if e.type == c.EVENT_TYPE_BOOKING_RESCHEDULED:
                moved = number
    return f"{b.id}~{moved}" if moved else b.id


def booking_of(holder_id: str) -> str:
    return holder_id.partition("~")[0]


class Moves:
    def __init__(self, retrying) -> None:
        self._retrying = retrying
        self.asked: Counter = Counter()  # booking id -> moves it accepted (each must be answered)
        self.figures: Counter = Counter()

    async def move(self, client: Client, booking_id: str, **target) -> bool:
        """Ask for one move with its own request id (a retry after a lost reply moves once)."""
        req = booking_pb2.RescheduleBookingRequest(
            booking_id=booking_id, request_id=uid("chaos-mv"), **target
        )
        try:
            await self._retrying(
                lambda: client.bookings.RescheduleBooking(req, metadata=client.auth(), timeout=10)
            )
        except grpc.aio.AioRpcError as err:
            if err.code() not in NOT_MOVABLE:  # not CONFIRMED any more, a move under way, already there
                raise
            self.figures["not movable"] += 1
            return False
        self.asked[booking_id] += 1
        self.figures["asked"] += 1
        return True

    def answered(self, b: c.Booking) -> bool:
        """Every move the booking accepted has its answer (unless it ended: its end released them)."""
        if b.status in (c.BOOKING_STATUS_CANCELLED, c.BOOKING_STATUS_REJECTED):
            return True
        return sum(1 for e in b.history if e.type in ANSWERS) >= self.asked[b.id]

    def problems(self, b: c.Booking) -> list[str]:
        answers = sum(1 for e in b.history if e.type in ANSWERS)
        if answers > self.asked[b.id]:
            return [f"booking {b.id}: {answers} reschedule answers for {self.asked[b.id]} moves"]
        return []

    def count(self, bookings) -> None:
        """Assigned, not added: this may run more than once, until a quiet moment."""
        for name, kind in (
            ("moved", c.EVENT_TYPE_BOOKING_RESCHEDULED),
            ("refused", c.EVENT_TYPE_RESCHEDULE_REFUSED),
        ):
            self.figures[name] = sum(1 for b in bookings for e in b.history if e.type == kind)
