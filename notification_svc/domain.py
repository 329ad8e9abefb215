"""What to tell whom, when, and in which words: pure rules, no I/O.

A told event (confirmed, cancelled, offered ...) becomes one delivery per channel the clinic has
configured and the patient allows; a CONFIRMED appointment also gets reminders at the configured
offsets before its start. Every delivery has an idempotency key that names it whatever is
redelivered: booking, kind, the sequence of the event it tells about, channel.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import common_pb2
from clinic_common.timeutil import parse_duration

S = common_pb2

APP, CONSOLE, EMAIL, SMS, WHATSAPP = "app", "console", "email", "sms", "whatsapp"
# app: the in-app record (always on); console: dev mode prints what it would send.
CHANNELS = (APP, CONSOLE, EMAIL, SMS, WHATSAPP)
NEEDS_CONSENT = {EMAIL: "email", SMS: "sms", WHATSAPP: "whatsapp"}  # channel -> ContactConsent field

_KIND_NAMES = {
    "EVENT_TYPE_BOOKING_CONFIRMED": "confirmed",
    "EVENT_TYPE_BOOKING_REJECTED": "rejected",
    "EVENT_TYPE_BOOKING_CANCELLED": "cancelled",
    "EVENT_TYPE_WAITLIST_OFFERED": "offered",
    "EVENT_TYPE_BOOKING_RESCHEDULED": "rescheduled",
    "EVENT_TYPE_DOCTOR_UNAVAILABLE": "doctor-unavailable",
}
# Event type -> delivery kind, for the kinds this build of the protos knows.
KINDS = {S.EventType.Value(name): kind for name, kind in _KIND_NAMES.items() if name in S.EventType.keys()}
# The events that set (or move) the appointment reminders count down to; any other told event of
# the booking (cancelled, rejected ...) drops them.
SETS_APPOINTMENT = frozenset(
    S.EventType.Value(name)
    for name in ("EVENT_TYPE_BOOKING_CONFIRMED", "EVENT_TYPE_BOOKING_RESCHEDULED")
    if name in S.EventType.keys()
)
REMINDER_PREFIX = "reminder-"
CONFIRM_TEMPLATE = "reminder-confirm"  # the first reminder, with CLINIC_CONFIRM_BY: asks to confirm
MAX_EVENT_AGE = timedelta(days=1)  # a notifier started on an old history does not tell last month's news


def parse_durations(text: str) -> tuple[str, ...]:
    """A comma-separated list of durations, kept as written (they name the reminders), longest first."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        parse_duration(item)
    return tuple(sorted(dict.fromkeys(items), key=parse_duration, reverse=True))


def reminder_kind(offset: str) -> str:
    return f"{REMINDER_PREFIX}{offset}"


def idempotency_key(booking_id: str, kind: str, sequence: int, channel: str) -> str:
    return f"{booking_id}:{kind}:{sequence}:{channel}"


def channels_for(configured: tuple[str, ...], consent: common_pb2.ContactConsent | None) -> list[str]:
    """The configured channels this patient allows; app and console need no consent."""
    allowed = []
    for channel in configured:
        field = NEEDS_CONSENT.get(channel)
        if field is None or (consent is not None and getattr(consent, field)):
            allowed.append(channel)
    return allowed


def appointment_start(appointment: common_pb2.Appointment, day_start: str, tz: ZoneInfo) -> datetime | None:
    """When the appointment begins: its time, or the doctor's day start for a token without one."""
    if not appointment.date:
        return None
    hhmm = appointment.start_time or day_start or "09:00"
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime.combine(date.fromisoformat(appointment.date), time(hour, minute), tzinfo=tz)


def reminder_times(start: datetime, offsets: tuple[str, ...], now: datetime) -> dict[str, datetime | None]:
    """Each reminder kind and when it fires; None for one whose time has already passed."""
    due = {}
    for offset in offsets:
        at = start - parse_duration(offset)
        due[reminder_kind(offset)] = at if at > now else None
    return due


def first_name(full_name: str) -> str:
    """The first word of the name: texts never carry the surname."""
    parts = full_name.split()
    return parts[0] if parts else "there"


def mask(channel: str, address: str) -> str:
    """An address as operators see it: r***@example.com, +91******3210."""
    if not address:
        return ""
    if channel == EMAIL and "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if channel in (SMS, WHATSAPP):
        return address[:3] + "*" * max(len(address) - 7, 0) + address[-4:] if len(address) > 7 else "***"
    return address


def address_of(channel: str, patient: common_pb2.Patient | None) -> str:
    if patient is None:
        return ""
    if channel == EMAIL:
        return patient.email
    if channel in (SMS, WHATSAPP):
        return patient.phone
    return patient.id


@dataclass(frozen=True)
class Text:
    subject: str
    body: str


class Templates:
    """`<kind>.txt` files: the first line is the subject, the rest the body, `$first_name` style
    placeholders ($first_name, $date, $time, $doctor, $reference, $token, and the phrases $when,
    "on 2026-12-10 at 10:30" or "on 2026-12-10 (token 4)", and $ref, " (reference K7QX9M)" or
    nothing). Reminders use
    `reminder.txt` unless a `reminder-<offset>.txt` exists."""

    FIELDS = ("first_name", "date", "time", "doctor", "reference", "token", "when", "ref", "confirm_by")

    def __init__(self, sources: dict[str, str]) -> None:
        self._templates = {kind: _split(text) for kind, text in sources.items()}
        for kind, (subject, body) in self._templates.items():
            for template in (subject, body):
                for name in _placeholders(template):
                    if name not in self.FIELDS:
                        raise ValueError(f"template {kind}: ${name} is not one of {', '.join(self.FIELDS)}")

    def render(self, kind: str, values: dict[str, str]) -> Text:
        key = kind if kind in self._templates else "reminder" if kind.startswith(REMINDER_PREFIX) else ""
        subject, body = self._templates.get(key) or self._templates["default"]
        fields = {name: values.get(name, "") for name in self.FIELDS}
        return Text(
            subject=string.Template(subject).safe_substitute(fields).strip(),
            body=string.Template(body).safe_substitute(fields).strip() + "\n",
        )


def _split(text: str) -> tuple[str, str]:
    subject, _, body = text.strip().partition("\n")
    return subject, body


def _placeholders(template: str) -> list[str]:
    return [
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(template)
        if m.group("named") or m.group("braced")
    ]


def reads_patient(channel: str, kind: str) -> bool:
    """Whether a delivery needs the registry's patient (consent, address, first name). An in-app
    message of a booking event is the event's own message: no registry read on the booking's path."""
    return channel != APP or kind.startswith(REMINDER_PREFIX)


def text_values(
    patient: common_pb2.Patient | None,
    appointment: common_pb2.Appointment,
    doctor_name: str,
) -> dict[str, str]:
    """The only facts a text may carry: first name, date, time, doctor, reference, token."""
    when = f"on {appointment.date}"
    if appointment.start_time:
        when += f" at {appointment.start_time}"
    elif appointment.token:
        when += f" (token {appointment.token})"
    return {
        "first_name": first_name(patient.name if patient is not None else ""),
        "date": appointment.date,
        "time": appointment.start_time,
        "doctor": doctor_name or "the clinic",
        "reference": appointment.reference,
        "token": str(appointment.token) if appointment.token else "",
        "when": when,
        "ref": f" (reference {appointment.reference})" if appointment.reference else "",
    }
