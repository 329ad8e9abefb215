"""discount_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import (
    ConfigError,
    Connections,
    env_addr,
    env_int,
    env_list,
    env_metrics_addr,
    env_timezone,
)

from .domain import Rules


@dataclass(frozen=True)
class DiscountConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    daily_quota: int
    rules: Rules
    booking_addrs: tuple[str, ...] = ("127.0.0.1:50061",)  # VerifyQuota reads bookings from booking_svc
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiscountConfig:
        env = os.environ if env is None else env
        return cls(
            addr=env_addr(env, "DISCOUNT_SVC_ADDR", "127.0.0.1:50063"),
            connections=Connections.from_env(env),
            timezone=env_timezone(env),
            daily_quota=env_int(env, "DAILY_DISCOUNT_QUOTA", 100),
            booking_addrs=env_list(env, "BOOKING_SVC_ADDR", "127.0.0.1:50061"),
            metrics_addr=env_metrics_addr(env, "DISCOUNT_SVC_METRICS_ADDR", "127.0.0.1:9463"),
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
