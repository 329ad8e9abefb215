"""Environment configuration: read once into frozen dataclasses, failing with one clear line."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clinic_common import services

T = TypeVar("T")

# Every list of services comes from the one table (clinic_common/services.py).
SERVICES = services.NAMES
ADDR_VARS = services.ADDR_VARS  # each service's listen address (and, for the gateway, its backends')
DEFAULT_ADDRS = services.DEFAULT_ADDRS
METRICS_VARS = services.METRICS_VARS  # each service's /metrics address
HTTP_SERVICES = services.HTTP_SERVICES  # HTTP behind the edge: health is GET /healthz


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


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name}={raw} must be a finite number of at least {minimum:g}")
    return value


def ack_wait_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long a consumer may hold a message before it is redelivered (CLINIC_ACK_WAIT_SECONDS)."""
    return env_float(os.environ if env is None else env, "CLINIC_ACK_WAIT_SECONDS", 10.0, minimum=0.1)


def nats_replicas(env: Mapping[str, str] | None = None) -> int:
    """Stream replicas (CLINIC_NATS_REPLICAS): JetStream allows 1 to 5."""
    env = os.environ if env is None else env
    value = env_int(env, "CLINIC_NATS_REPLICAS", 1, minimum=1)
    if value > 5:
        raise ConfigError(f"CLINIC_NATS_REPLICAS={value} must be between 1 and 5")
    return value


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def log_level(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    value = env_str(env, "CLINIC_LOG_LEVEL", "info").lower()
    if value not in LOG_LEVELS:
        raise ConfigError(f"CLINIC_LOG_LEVEL={value!r} must be one of {', '.join(LOG_LEVELS)}")
    return value


def running_service() -> str:
    """The service this process runs (`python -m booking_svc` -> booking_svc), or ''."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.partition(".")[0] if spec and spec.name else ""


def _bind_error(addr: str) -> str:
    """Why `addr` cannot be listened on now ('' if it can), judged the way grpc binds (SO_REUSEADDR)."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    try:
        family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
    except (OSError, ValueError):
        return ""  # a name this machine cannot resolve: leave the verdict to the server itself
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return "is already in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror
    return ""


def cannot_listen(addr: str, kind: str) -> ConfigError:
    """The one line for a listen address this process cannot take, naming the variable that moves it."""
    table = METRICS_VARS if kind == "metrics" else ADDR_VARS
    var = table.get(running_service())
    off = " (or off)" if kind == "metrics" else ""
    fix = f"set {var} to another host:port{off}" if var else "use another address"
    return ConfigError(f"{kind} port {addr} {_bind_error(addr) or 'cannot be bound'}: {fix}")


def check_listen_addrs(config: object) -> None:
    """A config's listen addresses (`addr`, `metrics_addr`) are free now: a port another process holds
    is one line before the process connects to anything, not a failure halfway through start-up."""
    for attr, kind in (("addr", "gRPC"), ("metrics_addr", "metrics")):
        addr = getattr(config, attr, None)
        if isinstance(addr, str) and addr != "off" and _bind_error(addr):
            raise cannot_listen(addr, kind)


def env_duration(env: Mapping[str, str], name: str, default: str) -> timedelta:
    """A duration setting (`30s`, `15m`, `2h`, `1d`)."""
    from clinic_common.timeutil import parse_duration

    try:
        return parse_duration(env_str(env, name, default))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def env_timezone(env: Mapping[str, str], name: str = "CLINIC_TIMEZONE") -> ZoneInfo:
    raw = env_str(env, name, "Asia/Kolkata")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a known IANA time zone") from None


def env_addr(env: Mapping[str, str], name: str, default: str) -> str:
    value = env_str(env, name, default)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"{name}={value!r} is not a host:port address")
    return value


def env_country_code(env: Mapping[str, str], name: str = "CLINIC_COUNTRY_CODE") -> str:
    """The calling code a 10-digit phone number gets (`91`), without the `+`."""
    value = env_str(env, name, "91").removeprefix("+")
    if not (value.isascii() and value.isdigit()) or not 1 <= len(value) <= 3 or value.startswith("0"):
        raise ConfigError(f"{name}={value!r} must be a country calling code such as 91")
    return value


def env_metrics_addr(env: Mapping[str, str], name: str, default: str) -> str:
    """host:port for /metrics, or 'off'."""
    value = env_str(env, name, default)
    return value if value == "off" else env_addr(env, name, default)


def env_addrs(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    """A comma-separated list of host:port addresses (every instance of a service), each checked."""
    addrs = env_list(env, name, default)
    for addr in addrs:
        env_addr({name: addr}, name, addr)
    return addrs


def own_addr(env: Mapping[str, str], service: str) -> str:
    """Where `service` listens: its variable in the service table, else its documented default."""
    row = services.get(service)
    return env_addr(env, row.addr_var, row.default_addr)


def own_metrics_addr(env: Mapping[str, str], service: str) -> str:
    row = services.get(service)
    return env_metrics_addr(env, row.metrics_var, row.default_metrics_addr)


def listening(env: Mapping[str, str], service: str) -> dict[str, object]:
    """What every service's config starts with: `addr`, `metrics_addr` (from the service table) and
    `connections` (NATS, Redis): `cls(**listening(env, "booking_svc"), ...)`."""
    return {
        "addr": own_addr(env, service),
        "connections": Connections.from_env(env),
        "metrics_addr": own_metrics_addr(env, service),
    }


def peer_addrs(env: Mapping[str, str], service: str) -> tuple[str, ...]:
    """Every instance of another service this one dials, from that service's variable."""
    row = services.get(service)
    return env_addrs(env, row.addr_var, row.default_addr)


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
    """Wrap a config loader so a bad variable, or a listen address another process holds, ends the
    process with one line, not a traceback."""

    @wraps(load)
    def wrapper() -> T:
        try:
            config = load()
            check_listen_addrs(config)
            return config
        except ConfigError as exc:
            exit_with(exc)

    return wrapper


def exit_with(exc: ConfigError) -> NoReturn:
    print(f"configuration error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
