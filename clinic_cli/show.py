"""How bookings and events look in a terminal."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.panel import Panel
from rich.table import Column, Table

from clinic.v1 import common_pb2 as c
from clinic_common.money import format_minor

# Wide enough that no line is ever folded; tables and panels are only as wide as their content.
NOT_A_TERMINAL_WIDTH = 10_000
STATUS_STYLE = {
    c.BOOKING_STATUS_PENDING: "yellow",
    c.BOOKING_STATUS_CONFIRMED: "green",
    c.BOOKING_STATUS_REJECTED: "red",
    c.BOOKING_STATUS_CANCELLED: "magenta",
    c.BOOKING_STATUS_WAITLISTED: "cyan",
}


def status(value: int) -> str:
    return c.BookingStatus.Name(value).removeprefix("BOOKING_STATUS_")


def event_line(event: c.BookingEvent) -> str:
    when = event.occurred_at.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
    kind = c.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
    style = STATUS_STYLE.get(event.status, "white")
    by = f"  [dim](by {event.actor.sub})[/]" if event.actor.sub else ""
    return f"[dim]{when}[/]  {event.sequence:>2}. [{style}]{kind:<22}[/] {event.message}{by}"


def id_column(header: str) -> Column:
    """A column of ids: never cut short or folded, whatever the terminal's width (ids are pasted)."""
    return Column(header, no_wrap=True, overflow="ignore", min_width=32)


def as_dict(message: Message) -> dict:
    """proto3 JSON (enum names, camelCase), as grpcurl prints it."""
    return json_format.MessageToDict(message)


def print_json(value: object) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0


def booking_panel(b: c.Booking) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(min_width=32, overflow="fold")  # the id whole; long text folds, never an ellipsis
    grid.add_row("booking", b.id)
    if b.reference:
        grid.add_row("reference", b.reference)
    grid.add_row("status", f"[{STATUS_STYLE.get(b.status, 'white')}]{status(b.status)}[/]")
    if b.status_message:
        grid.add_row("", b.status_message)
    if b.rejection_reason:
        grid.add_row("reason", c.RejectionReason.Name(b.rejection_reason).removeprefix("REJECTION_REASON_"))
    grid.add_row(
        "services", ", ".join(f"{s.name} ({format_minor(s.price.amount_minor)})" for s in b.services)
    )
    grid.add_row("date", b.appointment_date)
    if b.doctor_id:
        at = f" at {b.start_time} for {b.duration_minutes} min" if b.start_time else ""
        grid.add_row("doctor", f"{b.doctor_id}{at}" + (f", token {b.token}" if b.token else ""))
    grid.add_row("base price", format_minor(b.base_price.amount_minor))
    if b.discount.outcome:
        outcome = c.DiscountOutcome.Name(b.discount.outcome).removeprefix("DISCOUNT_OUTCOME_")
        amount = (
            f" {b.discount.percent}% -{format_minor(b.discount.amount.amount_minor)}"
            if b.discount.percent
            else ""
        )
        grid.add_row("discount", outcome + amount)
    grid.add_row("final price", f"[bold]{format_minor(b.final_price.amount_minor)}[/]")
    if b.payment.status:
        p = b.payment
        paid = f"{format_minor(p.paid.amount_minor)} paid"
        if p.refunded.amount_minor:
            paid += f", {format_minor(p.refunded.amount_minor)} refunded"
        if p.refund_due.amount_minor:
            paid += f", {format_minor(p.refund_due.amount_minor)} refund due"
        grid.add_row("payment", f"{c.PaymentStatus.Name(p.status).removeprefix('PAYMENT_STATUS_')}: {paid}")
    return Panel(grid, title="booking", expand=False)


def console(stderr: bool = False) -> Console:
    """A terminal gets rich output at its width; a pipe, a file or CI gets plain lines never wrapped."""
    out = Console(highlight=False, stderr=stderr)
    if out.is_terminal:
        return out
    return Console(highlight=False, stderr=stderr, width=NOT_A_TERMINAL_WIDTH, no_color=True)
