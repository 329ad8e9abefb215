"""What every service's entry point does: connect, serve, and shut down in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from clinic_common import nats_io, redis_io
from clinic_common.config import Connections
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_server import HealthyServer
from clinic_common.logs import get_logger

log = get_logger(__name__)

SHUTDOWN_GRACE_S = 5.0


@dataclass(frozen=True)
class Deps:
    nc: NATS
    js: JetStreamContext
    redis: aioredis.Redis


@asynccontextmanager
async def connected(name: str, conns: Connections) -> AsyncIterator[Deps]:
    nc = await nats_io.connect(conns.nats_urls, name)
    js = nc.jetstream(timeout=5.0)
    await nats_io.ensure_streams(nats_io.control_api(nc))
    redis = redis_io.connect(conns.redis_url)
    try:
        yield Deps(nc=nc, js=js, redis=redis)
    finally:
        await redis.aclose()
        try:
            await nc.drain()
        except Exception as exc:  # a drain racing a dead server must not hide the real exit
            log.warning("nats.drain_failed", error=repr(exc))


async def serve(
    server: HealthyServer,
    stop: asyncio.Event,
    *,
    consumers: Sequence[ConsumerLoop] = (),
    duties: Sequence[Coroutine] = (),
    on_stopping: Sequence[callable] = (),
    after_stop: Sequence[callable] = (),
    grace_s: float = SHUTDOWN_GRACE_S,
) -> None:
    """Serve until `stop`; then NOT_SERVING, stop fetching, finish in-flight work, stop the server.

    A consumer loop that dies unexpectedly stops the process (non-zero exit) so a supervisor
    restarts it, rather than leaving a half-working service behind.
    """
    await server.start()
    tasks = [asyncio.create_task(c.run(), name="consumer") for c in consumers]
    tasks += [asyncio.create_task(d, name="duty") for d in duties]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    log.info("service.ready", port=server.port)
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in done if t is not stopper and t.exception() is not None]
    for task in crashed:
        log.error("service.task_crashed", task=task.get_name(), error=repr(task.exception()))
    stop.set()
    await server.set_serving(False)
    for callback in on_stopping:
        callback()
    for consumer in consumers:
        consumer.stop()
    _, pending = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    for callback in after_stop:
        await callback()
    await server.stop(grace_s)
    log.info("service.stopped")
    if crashed:
        raise SystemExit(1)


async def every(period_s: float, duty, stop: asyncio.Event, name: str) -> None:
    """Run `duty()` every period until stopped; a failing round is logged and retried next period."""
    while not stop.is_set():
        try:
            await duty()
        except Exception as exc:
            log.warning("duty.failed", duty=name, error=repr(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=period_s)
        except TimeoutError:
            pass
