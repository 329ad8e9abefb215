"""Process entry: uvloop, one stop event set by SIGTERM/SIGINT, and a bounded graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from clinic_common.logs import get_logger

log = get_logger(__name__)

Main = Callable[[asyncio.Event], Awaitable[None]]


def run(main: Main) -> None:
    """Run `main(stop)`; the first SIGTERM/SIGINT sets `stop`, a second one exits at once."""
    runner = asyncio.run
    if os.environ.get("CLINIC_UVLOOP", "1") != "0":
        import uvloop

        runner = uvloop.run
    runner(_with_signals(main))


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
