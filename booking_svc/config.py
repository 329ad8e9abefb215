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
    Connections,
    env_addr,
    env_duration,
    env_int,
    env_list,
    env_metrics_addr,
    env_str,
    env_timezone,
)

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
    schedule_addrs: tuple[str, ...] = ("127.0.0.1:50064",)  # the registry and doctors (schedule_svc)
    no_show_after: timedelta = timedelta(hours=2)  # past the day's end, an unseen booking is a no-show

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BookingConfig:
        env = os.environ if env is None else env
        return cls(
            addr=env_addr(env, "BOOKING_SVC_ADDR", "127.0.0.1:50061"),
            connections=Connections.from_env(env),
            timezone=env_timezone(env),
            catalog=load(Path(env_str(env, "CLINIC_CATALOG", str(DEFAULT_CATALOG)))),
            timeout_s=env_int(env, "BOOKING_TIMEOUT_SECONDS", 300, minimum=1),
            max_pending=env_int(env, "CLINIC_MAX_PENDING_BOOKINGS", DEFAULT_MAX_PENDING, minimum=0),
            metrics_addr=env_metrics_addr(env, "BOOKING_SVC_METRICS_ADDR", "127.0.0.1:9461"),
            schedule_addrs=env_list(env, "SCHEDULE_SVC_ADDR", "127.0.0.1:50064"),
            no_show_after=env_duration(env, "CLINIC_NO_SHOW_AFTER", "2h"),
        )
