"""Builds fhir_svc (an aiohttp app behind the edge) from its config; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from aiohttp import web

from clinic_common import logs, metrics, tls
from clinic_common.config import cannot_listen
from clinic_common.grpc_client import open_channel

from .api import ClinicApi
from .config import FhirConfig
from .handlers import Fhir, errors

log = logs.get_logger(__name__)
MAX_BODY_BYTES = 64 * 1024


def create_app(api: ClinicApi, config: FhirConfig) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY_BYTES)
    app.add_routes(Fhir(api, config.timezone).routes())
    return app


async def main(stop: asyncio.Event, config: FhirConfig) -> None:
    metrics.serve(config.metrics_addr, "fhir_svc")
    internal = tls.InternalTls.from_env()
    channels = [
        open_channel(addrs, tls=internal)
        for addrs in (config.booking_addrs, config.schedule_addrs, config.frontdesk_addrs)
    ]
    runner = web.AppRunner(create_app(ClinicApi(*channels), config), access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = config.addr.rpartition(":")
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=tls.ssl_server_context()).start()
    except OSError:
        await runner.cleanup()
        raise cannot_listen(config.addr, "HTTP") from None
    log.info("fhir.listening", addr=config.addr, tls=internal is not None)
    try:
        await stop.wait()
    finally:
        await runner.shutdown()
        await runner.cleanup()
        for channel in channels:
            await channel.close()
