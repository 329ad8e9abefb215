"""Start the whole system for the benchmark: embedded servers plus the four services as subprocesses.

Self-contained (does not import tests/): a fresh data directory, free ports, least-privilege NATS
users and Redis ACLs exactly as `make run` sets them up, and the services configured only by
environment variables. `stop()` is idempotent and safe to call from any `finally`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinic_common import access, embedded, tls
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES
from clinic_common.grpc_client import open_channel

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
        self.procs: dict[str, subprocess.Popen] = {}

    def popen(self, name: str, args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def stop(self, names: Sequence[str] | None = None, timeout_s: float = 15.0) -> None:
        chosen = [n for n in (names or list(self.procs)) if n in self.procs]
        for name in chosen:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name in chosen:
            proc = self.procs[name]
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check_alive(self, logs: Path) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")


async def wait_healthy(
    addr: str,
    proc: subprocess.Popen,
    name: str,
    timeout_s: float = 60.0,
    internal: tls.InternalTls | None = None,
) -> None:
    """Poll grpc.health.v1 until SERVING (readiness is detected, never slept for)."""
    deadline = time.monotonic() + timeout_s
    async with open_channel([addr], tls=internal) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} at start")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{name} not healthy at {addr} within {timeout_s}s")


@dataclass
class Stack:
    """nats-server + valkey + the four services, in `data_dir`."""

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
        env = dict(os.environ)
        env.update(
            NATS_URL=self.creds.nats_url(module, self.nats_port),
            REDIS_URL=self.creds.redis_url(module, self.redis_port),
            CLINIC_CATALOG=str(catalog),
            CLINIC_AUTH="jwt",
            CLINIC_JWT_SECRET=self.jwt_secret,
            DAILY_DISCOUNT_QUOTA=str(DAILY_QUOTA),
            CLINIC_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
            **tls.ensure_dev_pki(self.data_dir),  # internal mutual TLS, as in production
        )
        for name, var in ADDR_VARS.items():
            env[var] = f"127.0.0.1:{self.ports[name]}"
        env[METRICS_VARS[module]] = f"127.0.0.1:{self.metrics_ports.setdefault(module, embedded.free_port())}"
        return env

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
            self.services.popen(
                name, [sys.executable, "-m", name], self.service_env(name, catalog), self.logs / f"{name}.log"
            )
        try:
            for name in SERVICES:
                internal = (
                    None if name == "gateway" else tls.InternalTls.from_env(self.service_env(name, catalog))
                )
                await wait_healthy(
                    f"127.0.0.1:{self.ports[name]}", self.services.procs[name], name, internal=internal
                )
        except Exception:
            self.services.check_alive(self.logs)
            raise
        return self

    def stop(self) -> None:
        self.services.stop()
        for server in (self.nats, self.redis):
            if server is not None:
                server.stop()
