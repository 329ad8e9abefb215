"""The clinic's notion of time: an injectable clock and the clinic day in CLINIC_TIMEZONE."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


class Clock:
    """Wall clock; tests pass a subclass (or FixedClock) to move time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock(Clock):
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def clinic_day(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day at `moment` in the clinic's timezone (the day rolls over at local midnight)."""
    return moment.astimezone(tz).date()


class DateError(ValueError):
    """A date field's problem, worded for the caller (its str() is a BadRequest description)."""


def parse_date(text: str) -> date:
    """Strict YYYY-MM-DD (date.fromisoformat also accepts other ISO shapes we do not want).

    Tells the two mistakes apart: "must be a date as YYYY-MM-DD" for the shape, "1990-02-30 is
    not a real date" for a day the calendar does not have.
    """
    digits = text[:4] + text[5:7] + text[8:]
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not (digits.isascii() and digits.isdigit()):
        raise DateError("must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DateError(f"{text} is not a real date") from None
