"""W3C trace context (traceparent) carried from the gateway through gRPC metadata and NATS headers.

One trace id follows a booking through every service and appears in every log line about it
(`trace_id`). Spans are not exported (no collector here); the ids are the OpenTelemetry format, so
an OTel SDK can pick them up unchanged.
"""

from __future__ import annotations

import contextvars
import re
import secrets

import structlog

HEADER = "traceparent"
_FORMAT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("traceparent", default="")


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def valid(value: str | None) -> bool:
    return bool(value) and bool(_FORMAT.fullmatch(value))


def trace_id(value: str) -> str:
    match = _FORMAT.fullmatch(value or "")
    return match.group(1) if match else ""


def bind(traceparent: str) -> None:
    """Make `traceparent` current for this task: logs get its trace id, publishes carry it on."""
    if valid(traceparent):
        _current.set(traceparent)
        structlog.contextvars.bind_contextvars(trace_id=trace_id(traceparent))


def current() -> str:
    return _current.get()


def child() -> str:
    """The header for an outgoing message: same trace, a new span id."""
    parent = _current.get()
    return new_traceparent(trace_id(parent)) if parent else ""
