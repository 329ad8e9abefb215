"""schedule_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from clinic_common.catalog import DEFAULT_CATALOG, Catalog, load
from clinic_common.config import (
    ConfigError,
    Connections,
    env_int,
    env_str,
    env_timezone,
    listening,
)


@dataclass(frozen=True)
class ScheduleConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    catalog: Catalog
    country_code: str = "91"
    metrics_addr: str = "off"
    offer_s: int = 900  # how long a freed place is held for the waitlisted booking it is offered to

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScheduleConfig:
        env = os.environ if env is None else env
        return cls(
            **listening(env, "schedule_svc"),
            timezone=env_timezone(env),
            catalog=load(Path(env_str(env, "CLINIC_CATALOG", str(DEFAULT_CATALOG)))),
            country_code=_country_code(env),
            offer_s=env_int(env, "WAITLIST_OFFER_SECONDS", 900, minimum=1),
        )


def _country_code(env: Mapping[str, str]) -> str:
    value = env_str(env, "CLINIC_COUNTRY_CODE", "91").removeprefix("+")
    if not value.isdigit() or not 1 <= len(value) <= 3 or value.startswith("0"):
        raise ConfigError(f"CLINIC_COUNTRY_CODE={value!r} must be a country calling code such as 91")
    return value
