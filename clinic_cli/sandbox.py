"""A throwaway system: embedded NATS and valkey plus every service, on free ports in a temporary
directory, started and stopped by the caller (`clinic scenarios` by default), as the tests do.

Nothing of the user's running system is used: its addresses, URLs and data directory are dropped
from the environment the services get.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from clinic_common import tls
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES
from clinic_tools import processes, starter
from gateway.auth import mint

from .launcher import LaunchError

# Variables that point at a live system; a throwaway one must never inherit them.
_LIVE_VARS = (
    "NATS_URL",
    "REDIS_URL",
    "CLINIC_DATA_DIR",
    "CLINIC_JWT_SECRET",
    "CLINIC_TOKEN",
    "CLINIC_NATS_REPLICAS",
    *ADDR_VARS.values(),
    *METRICS_VARS.values(),
)


OFFER_SECONDS = 3


class Throwaway:
    """`with Throwaway(say, quota=10) as system:` ... `system.gateway_addr`, `system.token`."""

    def __init__(self, say: Callable[[str], None], *, quota: int = 10, timeout_s: float = 60.0) -> None:
        self.say = say
        self.quota = quota
        self.timeout_s = timeout_s
        self.dir: Path | None = None
        self.system: starter.Servers | None = None
        self.servers: list = []
        self.procs: list[processes.Process] = []
        self.gateway_addr = ""
        self.token = ""

    def __enter__(self) -> Throwaway:
        self.dir = Path(tempfile.mkdtemp(prefix="clinic-throwaway-"))
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _LIVE_VARS}
        secret = secrets.token_urlsafe(32)
        self.system = starter.Servers(self.dir)
        env.update(
            CLINIC_DATA_DIR=str(self.dir),
            CLINIC_NATS_PORT=str(self.system.nats_port),
            CLINIC_NATS_MONITOR_PORT=str(self.system.monitor_port),
            CLINIC_REDIS_PORT=str(self.system.redis_port),
            CLINIC_NATS_CLUSTER="1",
            CLINIC_AUTH="jwt",
            CLINIC_JWT_SECRET=secret,
            DAILY_DISCOUNT_QUOTA=str(self.quota),
            WAITLIST_OFFER_SECONDS=str(OFFER_SECONDS),  # short, so the expiry scenario runs in seconds
            CLINIC_LOG_LEVEL="warning",
            **tls.ensure_dev_pki(self.dir),  # internal mutual TLS, as make run does
        )
        try:
            self.system.start()
        except (processes.ProcessDied, TimeoutError) as exc:
            raise LaunchError(str(exc).splitlines()[0]) from None
        self.servers = self.system.servers
        addrs = {module: f"127.0.0.1:{processes.free_port()}" for module in SERVICES}
        logs = self.dir / "logs"
        procs = {
            module: starter.service_process(
                module, self.system.service_env(module, env, addrs=addrs, metrics_addr="off"), logs
            )
            for module in SERVICES
        }
        self.procs = list(procs.values())
        try:
            starter.start_services(procs, addrs, self.timeout_s)
        except (processes.ProcessDied, TimeoutError) as exc:
            module = getattr(exc, "service", "a service")
            raise LaunchError(
                f"{module} of the throwaway system did not start: {procs[module].error_line()}"
            ) from None
        self.gateway_addr = addrs["gateway"]
        self.token = mint(secret, "scenarios", "admin", 3600)

    def __exit__(self, *_exc) -> None:
        starter.stop_services(self.procs, 10)
        if self.system is not None:
            self.system.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
