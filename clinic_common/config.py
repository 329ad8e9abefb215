"""Environment configuration: read once into frozen dataclasses, failing with one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")

SERVICES = ("schedule_svc", "booking_svc", "discount_svc", "notification_svc", "frontdesk_svc", "gateway")
# The variable that holds each service's listen address (and, for the gateway, its backends').
ADDR_VARS = {
    "booking_svc": "BOOKING_SVC_ADDR",
    "notification_svc": "NOTIFICATION_SVC_ADDR",
    "discount_svc": "DISCOUNT_SVC_ADDR",
    "schedule_svc": "SCHEDULE_SVC_ADDR",
    "frontdesk_svc": "FRONTDESK_SVC_ADDR",
    "gateway": "CLINIC_GATEWAY_ADDR",
}
DEFAULT_ADDRS = {
    "booking_svc": "127.0.0.1:50061",
    "notification_svc": "127.0.0.1:50062",
    "discount_svc": "127.0.0.1:50063",
    "schedule_svc": "127.0.0.1:50064",
    "frontdesk_svc": "127.0.0.1:50065",
    "gateway": "127.0.0.1:50051",
}
# The variable that holds each service's /metrics address.
METRICS_VARS = {
    "booking_svc": "BOOKING_SVC_METRICS_ADDR",
    "notification_svc": "NOTIFICATION_SVC_METRICS_ADDR",
    "discount_svc": "DISCOUNT_SVC_METRICS_ADDR",
    "schedule_svc": "SCHEDULE_SVC_METRICS_ADDR",
    "frontdesk_svc": "FRONTDESK_SVC_METRICS_ADDR",
    "gateway": "CLINIC_GATEWAY_METRICS_ADDR",
}


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env_str(env, name, default).split(",") if item.strip())


def env_timezone(env: Mapping[str, str], name: str = "CLINIC_TIMEZONE") -> ZoneInfo:
    raw = env_str(env, name, "Asia/Kolkata")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a known IANA time zone") from None


def env_addr(env: Mapping[str, str], name: str, default: str) -> str:
    value = env_str(env, name, default)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{name}={value!r} is not a host:port address")
    return value


def env_metrics_addr(env: Mapping[str, str], name: str, default: str) -> str:
    """host:port for /metrics, or 'off'."""
    value = env_str(env, name, default)
    return value if value == "off" else env_addr(env, name, default)


@dataclass(frozen=True)
class Connections:
    """Where the shared servers are. Empty URLs mean "the embedded defaults"."""

    nats_urls: tuple[str, ...]
    redis_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Connections:
        env = os.environ if env is None else env
        nats_port = env_int(env, "CLINIC_NATS_PORT", 4222, minimum=1)
        redis_port = env_int(env, "CLINIC_REDIS_PORT", 6379, minimum=1)
        nats_urls = env_list(env, "NATS_URL", f"nats://127.0.0.1:{nats_port}")
        redis_url = env_str(env, "REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
        for url in nats_urls:
            if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ConfigError(f"NATS_URL entry {url!r} must start with nats:// or tls://")
        if not redis_url.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")
        ):
            raise ConfigError(
                f"REDIS_URL={redis_url!r} must start with redis://, rediss://, redis+sentinel:// or redis+cluster://"
            )
        return cls(nats_urls=nats_urls, redis_url=redis_url)


def exit_on_config_error(load: Callable[[], T]) -> Callable[[], T]:
    """Wrap a config loader so a bad variable ends the process with one line, not a traceback."""

    @wraps(load)
    def wrapper() -> T:
        try:
            return load()
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
