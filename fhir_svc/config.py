"""fhir_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clinic_common.config import DEFAULT_ADDRS, env_addr, env_list, env_metrics_addr, env_timezone


def _addrs(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    addrs = env_list(env, name, default)
    for addr in addrs:
        env_addr({name: addr}, name, addr)
    return addrs


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
            addr=env_addr(env, "FHIR_SVC_ADDR", DEFAULT_ADDRS["fhir_svc"]),
            timezone=env_timezone(env),
            booking_addrs=_addrs(env, "BOOKING_SVC_ADDR", DEFAULT_ADDRS["booking_svc"]),
            schedule_addrs=_addrs(env, "SCHEDULE_SVC_ADDR", DEFAULT_ADDRS["schedule_svc"]),
            frontdesk_addrs=_addrs(env, "FRONTDESK_SVC_ADDR", DEFAULT_ADDRS["frontdesk_svc"]),
            metrics_addr=env_metrics_addr(env, "FHIR_SVC_METRICS_ADDR", "127.0.0.1:9467"),
        )
