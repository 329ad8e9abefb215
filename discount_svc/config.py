"""discount_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import (
    ConfigError,
    Connections,
    env_int,
    env_list,
    env_timezone,
    listening,
    peer_addrs,
)
from clinic_common.services import get as service

from .domain import Rules


@dataclass(frozen=True)
class DiscountConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    daily_quota: int
    rules: Rules
    # VerifyQuota reads bookings from booking_svc
    booking_addrs: tuple[str, ...] = (service("booking_svc").default_addr,)
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiscountConfig:
        env = os.environ if env is None else env
        return cls(
            **listening(env, "discount_svc"),
            timezone=env_timezone(env),
            daily_quota=env_int(env, "DAILY_DISCOUNT_QUOTA", 100),
            booking_addrs=peer_addrs(env, "booking_svc"),
            rules=Rules(
                percent=_percent(env),
                high_value_threshold_minor=env_int(env, "HIGH_VALUE_THRESHOLD", 1000) * 100,
                blocked_patient_ids=frozenset(env_list(env, "BLOCKED_PATIENT_IDS", "fail_test_user")),
            ),
        )


def _percent(env: Mapping[str, str]) -> int:
    value = env_int(env, "DISCOUNT_PERCENT", 12)
    if value > 100:
        raise ConfigError(f"DISCOUNT_PERCENT={value} must be between 0 and 100")
    return value
