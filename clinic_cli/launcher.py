"""`make run` / `clinic run`: embedded NATS and Redis, the four services, supervised, one Ctrl-C stops all."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinic_common import access, embedded, tls
from clinic_common.config import SERVICES
from gateway.auth import mint

RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10)


@dataclass
class Supervised:
    module: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    log_file: object = field(default=None, repr=False)

    def start(self) -> None:
        if self.log_file is None:
            self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        self.started_at = time.monotonic()

    def why(self, code: int | None) -> str:
        """Exit code 2 is a configuration error: one line, the last of the service's log."""
        if code != 2:
            return ""
        return ": " + self.log_path.read_text(errors="replace").strip().rpartition("\n")[2][:300]

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _say(console, text: str) -> None:
    console.print(text, highlight=False)


def dev_secret(data_dir: Path) -> str:
    """A development secret kept under the data dir, so tokens stay valid across runs."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_healthy(addr: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return True
            except grpc.RpcError:
                time.sleep(0.1)
    return False


def run() -> int:
    from rich.console import Console

    console = Console()
    env = dict(os.environ)
    data_dir = Path(env.get("CLINIC_DATA_DIR", "./var")).resolve()
    logs_dir = data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    servers: list[embedded.EmbeddedServer] = []
    services: list[Supervised] = []
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    per_service: dict[str, dict[str, str]] = {module: {} for module in SERVICES}
    creds = access.Credentials.load_or_create(data_dir)
    if not any(env.get(var) for var in tls.VARS):  # internal mutual TLS by default, with a development CA
        env.update(tls.ensure_dev_pki(data_dir))
    try:
        if not env.get("NATS_URL"):
            port = int(env.get("CLINIC_NATS_PORT", 4222))
            monitor = int(env.get("CLINIC_NATS_MONITOR_PORT", 8222))
            nodes = int(env.get("CLINIC_NATS_CLUSTER", "1") or 1)
            config = access.write_nats_config(creds, data_dir / "nats.json")
            if nodes == 1:
                servers.append(embedded.nats_server(data_dir, port, monitor, config_file=config).start())
                ports = [port]
            else:  # make cluster: a JetStream cluster on loopback, streams with 3 replicas
                ports = [port + i for i in range(nodes)]
                routes = [port + 2000 + i for i in range(nodes)]
                cluster = embedded.nats_cluster(
                    data_dir, ports, [monitor + i for i in range(nodes)], routes, config_file=config
                )
                servers.extend(node.start() for node in cluster)
                env["CLINIC_NATS_REPLICAS"] = str(min(3, nodes))
            for module in SERVICES:
                per_service[module]["NATS_URL"] = ",".join(creds.nats_url(module, p) for p in ports)
            urls = ", ".join(f"nats://127.0.0.1:{p}" for p in ports)
            _say(console, f"[green]✓[/] NATS JetStream  {urls}  (monitoring http://127.0.0.1:{monitor})")
            _say(
                console,
                f"  operator login: {creds.nats_url(access.OPS, port)}"
                f"  (one user per service: {data_dir / 'nats.json'})",
            )
        else:
            _say(console, f"[green]✓[/] NATS           {env['NATS_URL']} (external)")
        if not env.get("REDIS_URL"):
            port = int(env.get("CLINIC_REDIS_PORT", 6379))
            acl = access.write_redis_acl(creds, data_dir / "users.acl")
            servers.append(embedded.redis_server(data_dir, port, acl_file=acl).start())
            for module in SERVICES:
                per_service[module]["REDIS_URL"] = creds.redis_url(module, port)
            _say(
                console,
                f"[green]✓[/] Redis (valkey)  redis://127.0.0.1:{port}"
                f"  (append-only file in {data_dir / 'redis'})",
            )
        else:
            _say(console, f"[green]✓[/] Redis          {env['REDIS_URL']} (external)")

        auth = env.setdefault("CLINIC_AUTH", "jwt")
        if auth == "jwt" and not env.get("CLINIC_JWT_SECRET"):
            env["CLINIC_JWT_SECRET"] = dev_secret(data_dir)
            _say(console, f"[yellow]![/] development JWT secret in {data_dir / 'dev-jwt-secret'}")

        for module in SERVICES:
            svc = Supervised(module, {**env, **per_service[module]}, logs_dir / f"{module}.log")
            svc.start()
            services.append(svc)
        gateway_addr = env.get("CLINIC_GATEWAY_ADDR", "127.0.0.1:50051")
        if not wait_healthy(gateway_addr):
            _say(console, f"[red]✗[/] the gateway did not become healthy; see {logs_dir}")
            for svc in services:
                if svc.process and svc.process.poll() is not None:
                    _say(console, f"  {svc.module} exited ({svc.process.returncode}){svc.why(2)}")
            return 1
        _print_ready(console, env, gateway_addr, logs_dir)
        while not stopping:
            for svc in services:
                if svc.process and svc.process.poll() is not None and not stopping:
                    code = svc.process.returncode
                    quick = time.monotonic() - svc.started_at < 10
                    delay = RESTART_BACKOFF_S[min(svc.restarts, len(RESTART_BACKOFF_S) - 1)] if quick else 0.5
                    svc.restarts += 1
                    _say(
                        console,
                        f"[red]✗[/] {svc.module} exited ({code}){svc.why(code)}; "
                        f"restarting in {delay}s (restart #{svc.restarts})",
                    )
                    time.sleep(delay)
                    svc.start()
            time.sleep(0.2)
        return 0
    finally:
        _say(console, "stopping…")
        for svc in reversed(services):
            svc.stop()
        for server in reversed(servers):
            server.stop()
        _say(console, "[green]✓[/] stopped")


def _print_ready(console, env: dict[str, str], gateway_addr: str, logs_dir: Path) -> None:
    header = ""
    if env.get("CLINIC_AUTH") == "jwt":
        token = mint(env["CLINIC_JWT_SECRET"], "operator", "admin")
        header = f"-H 'authorization: Bearer {token}' "
        env_line = f"export CLINIC_TOKEN={token}"
    else:
        env_line = "# CLINIC_AUTH=none: no token needed"
    _say(
        console,
        f"[green]✓[/] booking_svc {env.get('BOOKING_SVC_ADDR', '127.0.0.1:50061')}  "
        f"notification_svc {env.get('NOTIFICATION_SVC_ADDR', '127.0.0.1:50062')}  "
        f"discount_svc {env.get('DISCOUNT_SVC_ADDR', '127.0.0.1:50063')}  (logs in {logs_dir})",
    )
    _say(console, f"[bold green]✓ gateway ready on {gateway_addr}[/]  — Ctrl-C stops everything\n")
    console.print("Try it (admin token, valid 12 h):", highlight=False)
    console.print(f"  grpcurl -plaintext {header}{gateway_addr} list", highlight=False, soft_wrap=True)
    console.print(
        f'  grpcurl -plaintext {header}-d \'{{"gender": "GENDER_FEMALE"}}\' '
        f"{gateway_addr} clinic.v1.BookingService/ListServices",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  {env_line}", highlight=False, soft_wrap=True)
