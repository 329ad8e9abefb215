"""`clinic offers accept <booking_id>`: take the place offered to a waitlisted booking in time."""

from __future__ import annotations

import argparse

from clinic.v1 import booking_pb2, notification_pb2
from clinic.v1 import common_pb2 as c

from .client import Api
from .show import booking_panel, console, event_line


def register(sub: argparse._SubParsersAction) -> None:
    offers = sub.add_parser("offers", help="waitlist offers: accept one before it expires")
    actions = offers.add_subparsers(dest="action", required=True)
    accept = actions.add_parser("accept", help="take the place offered to a waitlisted booking")
    accept.add_argument("booking_id")


async def run(api: Api, args: argparse.Namespace) -> int:
    """Accept, then follow the saga to its outcome (exit 0 once CONFIRMED)."""
    out = console()
    req = booking_pb2.AcceptOfferRequest(booking_id=args.booking_id)
    accepted = (await api.bookings.AcceptOffer(req, metadata=api.md, timeout=10)).booking
    out.print(f"offer accepted: booking [bold]{accepted.id}[/] goes on")
    watch = notification_pb2.WatchBookingRequest(booking_id=accepted.id)
    async for item in api.notifications.WatchBooking(watch, metadata=api.md):
        if item.event.sequence > len(accepted.history) - 1:  # from the acceptance on
            out.print(event_line(item.event))
    got = booking_pb2.GetBookingRequest(booking_id=accepted.id)
    final = (await api.bookings.GetBooking(got, metadata=api.md, timeout=10)).booking
    out.print(booking_panel(final))
    return 0 if final.status == c.BOOKING_STATUS_CONFIRMED else 1
