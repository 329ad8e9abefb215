"""Timestamps for protos."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_HHMM = re.compile(r"[0-9]{2}:[0-9]{2}")


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def to_timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def parse_hhmm(text: str) -> int:
    """Minutes since midnight from `HH:MM` (00:00-23:59); ValueError otherwise."""
    if _HHMM.fullmatch(text) is None:  # ASCII digits only: int() also reads "１０"
        raise ValueError(f"{text!r} is not a time as HH:MM")
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A setting's duration: a number with a unit, `30s`, `15m`, `2h`, `1d`; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
