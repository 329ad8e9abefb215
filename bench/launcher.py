"""Start the whole system for the benchmark: embedded servers plus every service, as subprocesses.

Self-contained (does not import tests/): a fresh data directory, free ports, least-privilege NATS
users and Redis ACLs exactly as `make run` sets them up, and the services configured only by
environment variables. `stop()` is idempotent and safe to call from any `finally`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clinic_common import tls
from clinic_common.config import SERVICES
from clinic_tools import embedded, processes, starter

ROOT = Path(__file__).resolve().parent.parent

# Very large capacities so the catalog never rejects; one cheap and one high-value service
# (above HIGH_VALUE_THRESHOLD = 1000.00, so eligible for the discount).
BASIC = "bench-basic"
PREMIUM = "bench-premium"
BENCH_CATALOG = {
    "currency": "INR",
    "services": [
        {"id": BASIC, "name": "Bench consultation", "price": "500.00", "daily_capacity": 10_000_000},
        {"id": PREMIUM, "name": "Bench MRI", "price": "6500.00", "daily_capacity": 10_000_000},
    ],
}
DAILY_QUOTA = 100_000_000


class Subprocesses:
    """Processes we started, by name; every one is stopped by `stop()` (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.running: dict[str, processes.Process] = {}

    @property
    def procs(self) -> dict[str, subprocess.Popen]:
        return {name: p.popen for name, p in self.running.items()}

    def popen(self, name: str, args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        self.running[name] = processes.Process(name, args, log, env=env, cwd=ROOT).start()
        return self.running[name].popen

    def stop(self, names: Sequence[str] | None = None, timeout_s: float = 15.0) -> None:
        chosen = [self.running[n].popen for n in (names or list(self.running)) if n in self.running]
        processes.stop_all(chosen, timeout_s)

    def check_alive(self, logs: Path) -> None:
        for name, proc in self.running.items():
            if not proc.alive():
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{proc.log_tail()}")

    async def wait_healthy(self, name: str, addr: str, timeout_s: float = 60.0) -> None:
        """grpc.health.v1 SERVING at addr (readiness is detected, never slept for)."""
        await asyncio.to_thread(starter.wait_healthy, name, self.running[name], addr, timeout_s)


@dataclass
class Stack:
    """nats-server + valkey + the services, in `data_dir` (clinic_tools.starter, as the tests)."""

    data_dir: Path
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    services: Subprocesses = field(default_factory=Subprocesses)
    servers: starter.Servers | None = None

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.servers = starter.Servers(self.data_dir)

    @property
    def nats_port(self) -> int:
        return self.servers.nats_port

    @property
    def monitor_port(self) -> int:
        return self.servers.monitor_port

    @property
    def redis_port(self) -> int:
        return self.servers.redis_port

    @property
    def nats(self) -> embedded.EmbeddedServer | None:
        return self.servers.nats

    @property
    def redis(self) -> embedded.EmbeddedServer | None:
        return self.servers.redis

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def gateway_addr(self) -> str:
        return f"127.0.0.1:{self.ports['gateway']}"

    @property
    def ops_nats_url(self) -> str:
        return self.servers.nats_url

    def pids(self) -> dict[str, int]:
        out = {name: proc.pid for name, proc in self.services.procs.items()}
        out["nats-server"] = self.nats.process.pid
        out["valkey"] = self.redis.process.pid
        return out

    def service_env(self, module: str, catalog: Path) -> dict[str, str]:
        return self.servers.service_env(
            module,
            os.environ,
            addrs={name: f"127.0.0.1:{self.ports[name]}" for name in SERVICES},
            metrics_addr=f"127.0.0.1:{self.metrics_ports.setdefault(module, embedded.free_port())}",
            overrides={
                "CLINIC_CATALOG": str(catalog),
                "CLINIC_AUTH": "jwt",
                "CLINIC_JWT_SECRET": self.jwt_secret,
                "DAILY_DISCOUNT_QUOTA": str(DAILY_QUOTA),
                "CLINIC_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT),
                **tls.ensure_dev_pki(self.data_dir),  # internal mutual TLS, as in production
            },
        )

    async def start(self) -> Stack:
        self.servers.start()
        catalog = self.data_dir / "bench-catalog.json"
        catalog.write_text(json.dumps(BENCH_CATALOG, indent=1))
        for name in SERVICES:
            self.ports.setdefault(name, embedded.free_port())
        procs = {
            name: starter.service_process(name, self.service_env(name, catalog), self.logs, ROOT)
            for name in SERVICES
        }
        self.services.running.update(procs)
        addrs = {name: f"127.0.0.1:{self.ports[name]}" for name in SERVICES}
        await asyncio.to_thread(starter.start_services, procs, addrs, 60.0)
        return self

    def stop(self) -> None:
        self.services.stop()
        if self.servers is not None:
            self.servers.stop()
