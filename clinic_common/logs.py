"""structlog, configured once per process: JSON lines, ids bound through contextvars, no health data."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from clinic_common.config import ConfigError, exit_with, log_level

# Keys that could carry a patient's identity beyond their id. They are dropped from every log line
# whatever the caller passed, so a careless log call cannot leak them.
_FORBIDDEN_KEYS = frozenset(
    {
        "name",
        "patient_name",
        "date_of_birth",
        "dob",
        "patient",
        "phone",
        "email",
        "note",
    }  # note: the visit's reason
)


def _drop_health_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in _FORBIDDEN_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def configure(service: str, level: str | None = None) -> None:
    try:
        level_name = (level or log_level()).upper()
    except ConfigError as exc:
        exit_with(exc)
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level_name)
    renderer: Any
    if os.environ.get("CLINIC_LOG_FORMAT", "json") == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_health_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level_name, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
