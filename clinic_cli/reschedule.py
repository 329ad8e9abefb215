"""`clinic reschedule <booking_id>`: move a booking to a new date, doctor or time, and wait for the answer.

The new places are held first and only then are the old ones given back (the reschedule saga), so
the booking either shows its new place (exit 0) or keeps everything it had (RESCHEDULE_REFUSED, exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c

from .client import Api, CliError
from .show import booking_panel, console, event_line

ANSWERS = (c.EVENT_TYPE_BOOKING_RESCHEDULED, c.EVENT_TYPE_RESCHEDULE_REFUSED)
WAIT_S = 30.0


def register(sub: argparse._SubParsersAction) -> None:
    move = sub.add_parser("reschedule", help="move a booking: new places first, then the old ones go")
    move.add_argument("booking_id")
    move.add_argument("--date", default="", help="new appointment date, YYYY-MM-DD")
    move.add_argument("--doctor", default="", help="new doctor id")
    move.add_argument("--at", default="", help="new time, HH:MM")
    move.add_argument("--duration", type=int, default=0, help="new length in minutes")
    move.add_argument("--request-id", default="", help="idempotency key: the same one twice moves once")


async def run(api: Api, args: argparse.Namespace) -> int:
    out = console()
    req = booking_pb2.RescheduleBookingRequest(
        booking_id=args.booking_id,
        appointment_date=args.date,
        doctor_id=args.doctor,
        start_time=args.at,
        duration_minutes=args.duration,
        request_id=args.request_id,
    )
    asked = (await api.bookings.RescheduleBooking(req, metadata=api.md, timeout=10)).booking
    out.print(f"reschedule asked: {asked.status_message}")
    # The booking is usually CONFIRMED already (its watch would end at once): read it until the
    # move's answer is in its history.
    get = booking_pb2.GetBookingRequest(booking_id=asked.id)
    seen = len(asked.history)
    deadline = time.monotonic() + WAIT_S
    while True:
        b = (await api.bookings.GetBooking(get, metadata=api.md, timeout=10)).booking
        for event in b.history[seen:]:
            out.print(event_line(event))
        seen = len(b.history)
        answers = [e for e in b.history if e.type in ANSWERS]
        if answers and answers[-1].sequence > len(asked.history):
            out.print(booking_panel(b))
            return 0 if answers[-1].type == c.EVENT_TYPE_BOOKING_RESCHEDULED else 1
        if time.monotonic() > deadline:
            raise CliError(f"no answer to the reschedule of {asked.id} within {WAIT_S:.0f} s", code=1)
        await asyncio.sleep(0.2)
