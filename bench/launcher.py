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
from clinic_tools import access, embedded, processes

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
        proc = self.running[name]
        ready = processes.readiness(name, addr, proc.env or {})
        await asyncio.to_thread(proc.wait_ready, ready, timeout_s)


@dataclass
class Stack:
    """nats-server + valkey + the services, in `data_dir`."""

    data_dir: Path
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    nats_port: int = field(default_factory=embedded.free_port)
    monitor_port: int = field(default_factory=embedded.free_port)
    redis_port: int = field(default_factory=embedded.free_port)
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    nats: embedded.EmbeddedServer | None = None
    redis: embedded.EmbeddedServer | None = None
    services: Subprocesses = field(default_factory=Subprocesses)
    creds: access.Credentials | None = None

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def gateway_addr(self) -> str:
        return f"127.0.0.1:{self.ports['gateway']}"

    @property
    def ops_nats_url(self) -> str:
        return self.creds.nats_url(access.OPS, self.nats_port)

    def pids(self) -> dict[str, int]:
        out = {name: proc.pid for name, proc in self.services.procs.items()}
        out["nats-server"] = self.nats.process.pid
        out["valkey"] = self.redis.process.pid
        return out

    def service_env(self, module: str, catalog: Path) -> dict[str, str]:
        return processes.service_env(
            module,
            os.environ,
            addrs={name: f"127.0.0.1:{self.ports[name]}" for name in SERVICES},
            metrics_addr=f"127.0.0.1:{self.metrics_ports.setdefault(module, embedded.free_port())}",
            nats_url=self.creds.nats_url(module, self.nats_port),
            redis_url=self.creds.redis_url(module, self.redis_port),
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.creds = access.Credentials.load_or_create(self.data_dir)
        nats_config = access.write_nats_config(self.creds, self.data_dir / "nats.json")
        acl = access.write_redis_acl(self.creds, self.data_dir / "users.acl")
        self.nats = embedded.nats_server(
            self.data_dir, self.nats_port, self.monitor_port, config_file=nats_config
        )
        self.redis = embedded.redis_server(self.data_dir, self.redis_port, acl_file=acl)
        self.nats.start()
        self.redis.start()
        catalog = self.data_dir / "bench-catalog.json"
        catalog.write_text(json.dumps(BENCH_CATALOG, indent=1))
        for name in SERVICES:
            self.ports.setdefault(name, embedded.free_port())
        for name in SERVICES:
            env = self.service_env(name, catalog)
            self.services.popen(name, processes.python_module(name), env, self.logs / f"{name}.log")
        for name in SERVICES:
            await self.services.wait_healthy(name, f"127.0.0.1:{self.ports[name]}")
        return self

    def stop(self) -> None:
        self.services.stop()
        for server in (self.nats, self.redis):
            if server is not None:
                server.stop()
