"""frontdesk_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import Connections, env_timezone, listening, peer_addrs
from clinic_common.services import get as service


@dataclass(frozen=True)
class FrontDeskConfig:
    addr: str
    connections: Connections
    timezone: ZoneInfo
    # CheckIn reads the booking from booking_svc
    booking_addrs: tuple[str, ...] = (service("booking_svc").default_addr,)
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FrontDeskConfig:
        env = os.environ if env is None else env
        return cls(
            **listening(env, "frontdesk_svc"),
            timezone=env_timezone(env),
            booking_addrs=peer_addrs(env, "booking_svc"),
        )
