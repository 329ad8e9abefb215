"""frontdesk_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import Connections, env_addr, env_list, env_metrics_addr, env_timezone


@dataclass(frozen=True)
class FrontDeskConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    booking_addrs: tuple[str, ...] = ("127.0.0.1:50061",)  # CheckIn reads the booking from booking_svc
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FrontDeskConfig:
        env = os.environ if env is None else env
        booking_addrs = env_list(env, "BOOKING_SVC_ADDR", "127.0.0.1:50061")
        for addr in booking_addrs:
            env_addr({"BOOKING_SVC_ADDR": addr}, "BOOKING_SVC_ADDR", addr)
        return cls(
            addr=env_addr(env, "FRONTDESK_SVC_ADDR", "127.0.0.1:50065"),
            connections=Connections.from_env(env),
            timezone=env_timezone(env),
            booking_addrs=booking_addrs,
            metrics_addr=env_metrics_addr(env, "FRONTDESK_SVC_METRICS_ADDR", "127.0.0.1:9466"),
        )
