"""fhir_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import env_timezone, own_addr, own_metrics_addr, peer_addrs


@dataclass(frozen=True)
class FhirConfig:
    addr: str
    timezone: ZoneInfo
    booking_addrs: tuple[str, ...]  # the public gRPC services it calls as the caller
    schedule_addrs: tuple[str, ...]
    frontdesk_addrs: tuple[str, ...]
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FhirConfig:
        env = os.environ if env is None else env
        return cls(
            addr=own_addr(env, "fhir_svc"),  # no NATS, no Redis: no connections
            timezone=env_timezone(env),
            booking_addrs=peer_addrs(env, "booking_svc"),
            schedule_addrs=peer_addrs(env, "schedule_svc"),
            frontdesk_addrs=peer_addrs(env, "frontdesk_svc"),
            metrics_addr=own_metrics_addr(env, "fhir_svc"),
        )
