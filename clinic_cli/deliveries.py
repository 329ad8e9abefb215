"""`clinic deliveries <booking_id>`: every message the booking's patient was sent, per channel
(addresses masked), with its status and attempts; `DEAD` ones are also in `clinic dlq`."""

from __future__ import annotations

import argparse

from rich.table import Table

from clinic.v1 import notification_pb2

from .show import as_dict, console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("deliveries", help="the messages a booking's patient was sent (e-mail, SMS ...)")
    cmd.add_argument("booking_id")
    cmd.add_argument("--json", action="store_true")


async def run(api, args: argparse.Namespace) -> int:
    req = notification_pb2.ListDeliveriesRequest(booking_id=args.booking_id)
    found = (await api.notifications.ListDeliveries(req, metadata=api.md, timeout=10)).deliveries
    if args.json:
        return print_json([as_dict(d) for d in found])
    out = console()
    if not found:
        out.print(f"no messages sent for booking {args.booking_id} (yet)")
        return 0
    table = Table("when", "kind", "channel", "to", "status", "attempts")
    for d in found:
        table.add_row(
            d.at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            d.kind,
            d.channel,
            d.to or "-",
            notification_pb2.DeliveryStatus.Name(d.status).removeprefix("DELIVERY_STATUS_"),
            str(d.attempts),
        )
    out.print(table)
    return 0
