"""gateway configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from clinic_common import services, tls, tracing
from clinic_common.config import (
    ConfigError,
    env_int,
    env_str,
    log_level,
    own_addr,
    own_metrics_addr,
    peer_addrs,
)
from clinic_common.tls import DEFAULT_NAME

from . import json_api, web


@dataclass(frozen=True)
class InternalTlsFiles:
    """Mutual TLS to the backends: Envoy reads the files itself."""

    cert: str
    key: str
    ca: str
    name: str = DEFAULT_NAME


@dataclass(frozen=True)
class GatewayConfig:
    addr: str
    backends: dict[str, tuple[str, ...]]  # backend name -> its instances' host:port
    auth: str  # "jwt" or "none"
    jwt_secret: str
    patient_rate_per_s: int = 20
    admin_rate_per_s: int = 0  # 0: operators' tools are not throttled
    rate_burst: int = 40
    max_request_bytes: int = 64 * 1024
    tls_cert: str = ""  # public TLS: PEM file paths
    tls_key: str = ""
    internal_tls: InternalTlsFiles | None = None
    metrics_addr: str = "off"
    workers: int = 1
    log_level: str = "info"
    web_dir: str = ""  # the front desk page's built files (gateway/web.py); empty: no page
    clinic_name: str = web.DEFAULT_CLINIC_NAME  # CLINIC_NAME, printed on the page's receipts
    descriptors: str = ""  # the protos' descriptor set (gateway/json_api.py); empty: no JSON mapping
    otlp_url: str = ""  # where Envoy's OpenTelemetry tracer sends spans (OTEL_* variables); empty: no spans
    otlp_protocol: str = "http/protobuf"

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
        tls_cert, tls_key = _path(env, "CLINIC_TLS_CERT"), _path(env, "CLINIC_TLS_KEY")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("set both CLINIC_TLS_CERT and CLINIC_TLS_KEY, or neither")
        backends = {name: peer_addrs(env, name) for name in services.BACKENDS}
        return cls(
            addr=own_addr(env, "gateway"),
            backends={name: addrs for name, addrs in backends.items() if addrs},
            auth=auth,
            jwt_secret=secret,
            patient_rate_per_s=env_int(env, "CLINIC_RATE_LIMIT_RPS", 20),
            admin_rate_per_s=env_int(env, "CLINIC_ADMIN_RATE_LIMIT_RPS", 0),
            rate_burst=env_int(env, "CLINIC_RATE_LIMIT_BURST", 40, minimum=1),
            max_request_bytes=env_int(env, "CLINIC_MAX_REQUEST_BYTES", 64 * 1024, minimum=1024),
            tls_cert=tls_cert,
            tls_key=tls_key,
            internal_tls=_internal_tls(env),
            metrics_addr=own_metrics_addr(env, "gateway"),
            workers=env_int(env, "CLINIC_GATEWAY_WORKERS", 1, minimum=1),
            log_level=log_level(env),
            web_dir=str(web.page_dir(env) or ""),
            clinic_name=web.clinic_name(env),
            descriptors=_descriptors(env),
            otlp_url=_otlp_url(env),
            otlp_protocol=tracing.protocol_from_env(env),
        )


def _otlp_url(env: Mapping[str, str]) -> str:
    """The OTLP traces URL from the standard variables (the signal's own one as is; the base + /v1/traces)."""
    if tracing.exporter_from_env(env) != "otlp":
        return ""
    own = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
    url = own or base.rstrip("/") + "/v1/traces"
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if own else "OTEL_EXPORTER_OTLP_ENDPOINT"
        raise ConfigError(f"{name}={env.get(name, '').strip()!r} is not an http(s)://host:port URL")
    return url


def _descriptors(env: Mapping[str, str]) -> str:
    """CLINIC_PROTO_DESCRIPTORS (default gen/clinic_descriptors.pb when built; "off": no JSON mapping)."""
    raw = env.get("CLINIC_PROTO_DESCRIPTORS", "").strip()
    if raw == "off":
        return ""
    if not raw:
        return str(json_api.DEFAULT_PATH) if json_api.DEFAULT_PATH.is_file() else ""
    return _path(env, "CLINIC_PROTO_DESCRIPTORS")


def _path(env: Mapping[str, str], name: str) -> str:
    path = env.get(name, "").strip()
    if path and not Path(path).is_file():
        raise ConfigError(f"{name}={path!r} cannot be read")
    return str(Path(path).resolve()) if path else ""


def _internal_tls(env: Mapping[str, str]) -> InternalTlsFiles | None:
    """The files Envoy presents to the services; checked here as every service checks its own (the
    services take only mutual TLS, so without it the edge could reach none of them)."""
    if tls.required_from_env(env) is None:
        return None  # CLINIC_AUTH=none: a declared development machine
    return InternalTlsFiles(
        *(_path(env, n) for n in tls.VARS), name=env_str(env, "CLINIC_INTERNAL_TLS_NAME", DEFAULT_NAME)
    )
