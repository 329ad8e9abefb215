"""booking_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from clinic_common.catalog import DEFAULT_CATALOG, Catalog, load
from clinic_common.config import (
    ConfigError,
    Connections,
    env_country_code,
    env_duration,
    env_int,
    env_str,
    env_timezone,
    listening,
    peer_addrs,
)
from clinic_common.services import get as service
from clinic_common.timeutil import parse_duration

# Sagas in flight (PENDING bookings) at which CreateBooking answers RESOURCE_EXHAUSTED instead of
# queueing: 4-7 s of work at the 140-280 sagas/s measured here. 0 turns shedding off.
DEFAULT_MAX_PENDING = 1000


@dataclass(frozen=True)
class BookingConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    catalog: Catalog
    timeout_s: int
    max_pending: int = 0
    metrics_addr: str = "off"
    # the registry and doctors (schedule_svc)
    schedule_addrs: tuple[str, ...] = (service("schedule_svc").default_addr,)
    country_code: str = "91"  # completes a 10-digit phone of an inline patient
    cancel_notice_hours: int = 0  # a patient cancels at least this long before the start (0: any time)
    refund_policy: str = "full"  # what a cancelled paid booking is owed: full (in notice) or none
    payment_fsync: str = "waitaof"  # a payment is fsynced before the answer; "off" for a Redis without AOF
    no_show_after: timedelta = timedelta(hours=2)  # past the day's end, an unseen booking is a no-show
    confirm_by: timedelta | None = None  # CLINIC_CONFIRM_BY: unconfirmed this long before, released
    first_reminder: timedelta = timedelta(hours=24)  # the longest of CLINIC_REMINDERS: it asks

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BookingConfig:
        env = os.environ if env is None else env
        return cls(
            **listening(env, "booking_svc"),
            timezone=env_timezone(env),
            catalog=load(Path(env_str(env, "CLINIC_CATALOG", str(DEFAULT_CATALOG)))),
            timeout_s=env_int(env, "BOOKING_TIMEOUT_SECONDS", 300, minimum=1),
            max_pending=env_int(env, "CLINIC_MAX_PENDING_BOOKINGS", DEFAULT_MAX_PENDING, minimum=0),
            schedule_addrs=peer_addrs(env, "schedule_svc"),
            country_code=env_country_code(env),
            cancel_notice_hours=env_int(env, "CLINIC_CANCEL_NOTICE_HOURS", 0, minimum=0),
            refund_policy=env_choice(env, "CLINIC_REFUND_POLICY", "full", ("full", "none")),
            payment_fsync=env_choice(env, "CLINIC_PAYMENT_FSYNC", "waitaof", ("waitaof", "off")),
            no_show_after=env_duration(env, "CLINIC_NO_SHOW_AFTER", "2h"),
            **_confirm_or_release(env),
        )


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _confirm_or_release(env: Mapping[str, str]) -> dict:
    """CLINIC_CONFIRM_BY (off when unset) and the first reminder that asks for it (CLINIC_REMINDERS,
    the same setting notification_svc reads): the question must come before the deadline."""
    reminders = [
        item.strip() for item in env_str(env, "CLINIC_REMINDERS", "24h,2h").split(",") if item.strip()
    ]
    try:
        first = max(parse_duration(item) for item in reminders)
    except ValueError as exc:
        raise ConfigError(f"CLINIC_REMINDERS: {exc}") from None
    if not env_str(env, "CLINIC_CONFIRM_BY", ""):
        return {"first_reminder": first}
    confirm_by = env_duration(env, "CLINIC_CONFIRM_BY", "")
    if confirm_by >= first:
        raise ConfigError(
            "CLINIC_CONFIRM_BY must be shorter than the longest of CLINIC_REMINDERS (which asks)"
        )
    return {"confirm_by": confirm_by, "first_reminder": first}
