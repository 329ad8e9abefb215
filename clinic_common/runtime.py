"""Process entry: uvloop, one stop event set by SIGTERM/SIGINT, and a bounded graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable

from clinic_common import tls, tracing
from clinic_common.config import ConfigError, ack_wait_seconds, exit_with, nats_replicas, running_service
from clinic_common.logs import get_logger

log = get_logger(__name__)

Main = Callable[[asyncio.Event], Awaitable[None]]

# Container allocations between two young-generation collections (CPython's default is 700). A
# service allocates a few thousand per saga message; at 700, notification_svc spent 6.4% of its CPU
# in the cyclic collector (perf, 64 bookings in flight), walking again and again what it keeps
# (recent events for replays, connections, caches). Reference counting frees almost everything
# here; the collector only has cycles to find, and they can wait a little longer.
GC_YOUNG_THRESHOLD = 50_000


def run(main: Main) -> None:
    """Run `main(stop)`; the first SIGTERM/SIGINT sets `stop`, a second one exits at once.

    A configuration error, found before start or while starting (a port another process holds),
    ends the process with one line on stderr and exit code 2, never a traceback.
    """
    runner = asyncio.run
    if os.environ.get("CLINIC_UVLOOP", "1") != "0":
        import uvloop

        runner = uvloop.run
    try:
        check_shared_settings()
        tracing.configure(running_service() or "clinic")
        tune_gc()
        runner(_with_signals(main))
    except ConfigError as exc:
        exit_with(exc)
    finally:
        tracing.shutdown()  # the spans still in the batch go out before the process ends


def tune_gc() -> None:
    """Before the loop starts: what start-up made (modules, protobuf descriptors, settings) moves to
    the collector's permanent generation, so no later collection walks it, and the young generation
    is collected every GC_YOUNG_THRESHOLD allocations instead of every 700."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def check_shared_settings() -> None:
    """What every process reads later, checked before it connects to anything."""
    ack_wait_seconds()
    nats_replicas()
    if tls.required_from_env() is None:
        log.warning(
            "internal.plaintext",
            detail="CLINIC_AUTH=none and no internal TLS: identity metadata from any local caller is "
            "believed; development only",
        )


async def _with_signals(main: Main) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signame: str) -> None:
        if stop.is_set():
            log.warning("process.forced_exit", signal=signame)
            raise SystemExit(1)
        log.info("process.stopping", signal=signame)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    await main(stop)
