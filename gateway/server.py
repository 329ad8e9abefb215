"""Builds the gateway: one public port, clinic.v1 forwarded, health and reflection on."""

from __future__ import annotations

import asyncio

import grpc

from clinic_common import bootstrap, metrics
from clinic_common.grpc_client import open_channel
from clinic_common.grpc_server import HealthyServer, create_server
from clinic_common.logs import get_logger
from clinic_common.tls import InternalTls

from .auth import JwtAuth, NoAuth
from .config import GatewayConfig
from .forward import SERVICE_CONFIG, Forwarder, build_routes, service_names
from .limits import Limits

log = get_logger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def build(config: GatewayConfig) -> tuple[HealthyServer, list[grpc.aio.Channel]]:
    if config.auth == "none":
        log.warning(
            "gateway.auth_disabled", detail="CLINIC_AUTH=none: every caller is an admin; development only"
        )
        authenticator = NoAuth()
    else:
        authenticator = JwtAuth(config.jwt_secret)
    internal_tls = InternalTls.from_env()
    channels = [
        open_channel(a, SERVICE_CONFIG, CHANNEL_OPTIONS, tls=internal_tls)
        for a in (
            config.booking_addrs,
            config.notification_addrs,
            config.discount_addrs,
            config.schedule_addrs,
            config.frontdesk_addrs,
        )
    ]
    if bool(config.tls_cert) != bool(config.tls_key):
        raise SystemExit("configuration error: set both CLINIC_TLS_CERT and CLINIC_TLS_KEY, or neither")
    credentials = (
        grpc.ssl_server_credentials([(config.tls_key, config.tls_cert)]) if config.tls_cert else None
    )
    limits = Limits(
        patient_rate_per_s=config.patient_rate_per_s,
        admin_rate_per_s=config.admin_rate_per_s,
        burst=config.rate_burst,
        max_watches=config.max_watch_streams,
    )
    forwarder = Forwarder(build_routes(*channels), authenticator, limits)
    server = create_server(
        config.addr,
        [],
        service_names(),
        reflect=True,
        handlers=[forwarder],
        options=[("grpc.max_receive_message_length", config.max_request_bytes)],
        credentials=credentials,
    )
    log.info("gateway.listening", addr=config.addr, tls=bool(credentials), auth=config.auth)
    return server, channels


async def main(stop: asyncio.Event, config: GatewayConfig) -> None:
    metrics.serve(config.metrics_addr)
    server, channels = build(config)
    try:
        await bootstrap.serve(server, stop)
    finally:
        for channel in channels:
            await channel.close()
