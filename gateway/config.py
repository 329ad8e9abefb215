"""gateway configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clinic_common.config import ConfigError, env_addr, env_int, env_list, env_metrics_addr, env_str


@dataclass(frozen=True)
class GatewayConfig:
    addr: str
    booking_addrs: tuple[str, ...]
    notification_addrs: tuple[str, ...]
    discount_addrs: tuple[str, ...]
    schedule_addrs: tuple[str, ...]
    frontdesk_addrs: tuple[str, ...]
    auth: str  # "jwt" or "none"
    jwt_secret: str
    patient_rate_per_s: int = 20
    admin_rate_per_s: int = 0  # 0: operators' tools are not throttled
    rate_burst: int = 40
    max_watch_streams: int = 10
    max_request_bytes: int = 64 * 1024
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    metrics_addr: str = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        auth = env_str(env, "CLINIC_AUTH", "jwt")
        if auth not in ("jwt", "none"):
            raise ConfigError(f"CLINIC_AUTH={auth!r} must be 'jwt' or 'none'")
        secret = env.get("CLINIC_JWT_SECRET", "")
        if auth == "jwt" and len(secret) < 32:
            raise ConfigError(
                "CLINIC_JWT_SECRET must be set (at least 32 characters, RFC 7518) when CLINIC_AUTH=jwt"
            )
        return cls(
            addr=env_addr(env, "CLINIC_GATEWAY_ADDR", "127.0.0.1:50051"),
            booking_addrs=_addrs(env, "BOOKING_SVC_ADDR", "127.0.0.1:50061"),
            notification_addrs=_addrs(env, "NOTIFICATION_SVC_ADDR", "127.0.0.1:50062"),
            discount_addrs=_addrs(env, "DISCOUNT_SVC_ADDR", "127.0.0.1:50063"),
            schedule_addrs=_addrs(env, "SCHEDULE_SVC_ADDR", "127.0.0.1:50064"),
            frontdesk_addrs=_addrs(env, "FRONTDESK_SVC_ADDR", "127.0.0.1:50065"),
            auth=auth,
            jwt_secret=secret,
            patient_rate_per_s=env_int(env, "CLINIC_RATE_LIMIT_RPS", 20),
            admin_rate_per_s=env_int(env, "CLINIC_ADMIN_RATE_LIMIT_RPS", 0),
            rate_burst=env_int(env, "CLINIC_RATE_LIMIT_BURST", 40, minimum=1),
            max_watch_streams=env_int(env, "CLINIC_MAX_WATCH_STREAMS", 10, minimum=1),
            max_request_bytes=env_int(env, "CLINIC_MAX_REQUEST_BYTES", 64 * 1024, minimum=1024),
            tls_cert=_read(env, "CLINIC_TLS_CERT"),
            tls_key=_read(env, "CLINIC_TLS_KEY"),
            metrics_addr=env_metrics_addr(env, "CLINIC_GATEWAY_METRICS_ADDR", "127.0.0.1:9464"),
        )


def _read(env: Mapping[str, str], name: str) -> bytes | None:
    path = env.get(name, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}={path!r} cannot be read: {exc.strerror}") from None


def _addrs(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    addrs = env_list(env, name, default)
    for addr in addrs:
        env_addr({name: addr}, name, addr)
    return addrs
