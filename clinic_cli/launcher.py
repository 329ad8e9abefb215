"""`make run` / `clinic run`: embedded NATS and Redis, every service, supervised, one Ctrl-C stops all.

Supervision covers start-up as well as running: a service that exits, before or after it was ready,
is restarted with backoff, the reason (the first error line of its log, and which port is taken and
which variable moves it) is printed with its name, and so is its return to health.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clinic_common import services, tls
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES, ConfigError
from clinic_tools import access, embedded, processes, starter
from gateway.auth import mint
from gateway.web import page_dir

from .show import console as make_console

RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10)
# A service that never became ready and failed this many times in a row is given up on.
GIVE_UP_AFTER = 8
GATEWAY = services.GATEWAY
# Documented defaults (README, from the service table): used when free; otherwise the launcher picks
# the next free port below the ephemeral range, so a second `make run` on the machine does not
# collide. The gateway's own address is the contract's and is never moved.
DEFAULT_PORTS = {row.name: row.port for row in services.TABLE if row.name != GATEWAY}
DEFAULT_METRICS_PORTS = {row.name: row.metrics_port for row in services.TABLE}
FALLBACK_PORT_BASE = 20000  # services without a documented default


@dataclass
class Supervised:
    """One service process, its address, and the ports it binds (variable -> port)."""

    module: str
    proc: processes.Process
    addr: str
    ports: dict[str, int]
    restarts: int = 0
    failures: int = 0  # exits in a row without becoming ready
    ready: bool = False
    ever_ready: bool = False
    restart_at: float | None = None
    ready_check: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        if self.ready_check is None:
            self.ready_check = processes.readiness(self.module, self.addr, self.proc.env or {})

    def exit_report(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        busy = [
            f"port {port} is in use (set {var} to move it)"
            for var, port in self.ports.items()
            if not processes.port_free(port)
        ]
        return "; ".join([self.proc.error_line(), *busy])


def dev_secret(data_dir: Path) -> str:
    """A development secret kept under the data dir, so tokens stay valid across runs."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def choose_addresses(env: dict[str, str], say: Callable[[str], None]) -> dict[str, str]:
    """Each service's listen address and /metrics address not set by the user, written into `env`.

    The public gateway address is the contract's (127.0.0.1:50051) unless set. Internal and metrics
    ports take their documented default when it is free, else the next free one below 32768.
    """
    taken: set[int] = set()
    for module in SERVICES:
        for var, defaults in (
            (ADDR_VARS[module], DEFAULT_PORTS),
            (METRICS_VARS[module], DEFAULT_METRICS_PORTS),
        ):
            if env.get(var) or (var == ADDR_VARS[GATEWAY]):
                continue
            preferred = defaults.get(module, FALLBACK_PORT_BASE)
            port = processes.pick_port(preferred, taken, FALLBACK_PORT_BASE)
            taken.add(port)
            env[var] = f"127.0.0.1:{port}"
            if port != preferred and module in defaults:
                say(f"[yellow]![/] {module}: port {preferred} is in use, using {port} (set {var} to choose)")
    env.setdefault(ADDR_VARS[GATEWAY], services.get(GATEWAY).default_addr)
    return env


def start_servers(
    env: dict[str, str], data_dir: Path, say: Callable[[str], None]
) -> tuple[list[embedded.EmbeddedServer], dict[str, dict[str, str]]]:
    """The embedded NATS and Redis (unless NATS_URL / REDIS_URL name others), and each service's URLs."""
    urls: dict[str, dict[str, str]] = {module: {} for module in SERVICES}
    port = int(env.get("CLINIC_NATS_PORT") or 4222)
    monitor = int(env.get("CLINIC_NATS_MONITOR_PORT") or 8222)
    nodes = int(env.get("CLINIC_NATS_CLUSTER") or 1)
    system = starter.Servers(  # make cluster: a JetStream cluster on loopback, streams with 3 replicas
        data_dir,
        nats_port=port,
        monitor_port=monitor,
        redis_port=int(env.get("CLINIC_REDIS_PORT") or 6379),
        nats_nodes=nodes,
        node_ports=[port + i for i in range(nodes)] if nodes > 1 else [],
        monitor_ports=[monitor + i for i in range(nodes)] if nodes > 1 else [],
        route_ports=[port + 2000 + i for i in range(nodes)] if nodes > 1 else [],
    )
    try:
        if not env.get("NATS_URL"):
            system.start_nats(lambda node: _start_server(node, "CLINIC_NATS_PORT"))
            if nodes > 1:
                env["CLINIC_NATS_REPLICAS"] = str(min(3, nodes))
            for module in SERVICES:
                urls[module]["NATS_URL"] = system.nats_urls(module)
            ports = system.node_ports or [port]
            say(
                f"[green]✓[/] NATS JetStream  {', '.join(f'nats://127.0.0.1:{p}' for p in ports)}"
                f"  (monitoring http://127.0.0.1:{monitor}/jsz?streams=true&consumers=true)"
            )
            say(
                f"  operator login: {system.creds.nats_url(access.OPS, port)}"
                f"  (one user per service: {data_dir / 'nats.json'})"
            )
        else:
            say(f"[green]✓[/] NATS           {env['NATS_URL']} (external)")
        if not env.get("REDIS_URL"):
            system.start_redis(lambda server: _start_server(server, "CLINIC_REDIS_PORT"))
            for module in SERVICES:
                urls[module]["REDIS_URL"] = system.urls_for(module)["REDIS_URL"]
            say(
                f"[green]✓[/] Redis (valkey)  redis://127.0.0.1:{system.redis_port}"
                f"  (append-only file in {data_dir / 'redis'})"
            )
        else:
            say(f"[green]✓[/] Redis          {env['REDIS_URL']} (external)")
    except BaseException:
        system.stop()  # what did start must not outlive the launcher
        raise
    return system.servers, urls


class LaunchError(Exception):
    """Printed as one line; `make run` stops."""


def _start_server(server: embedded.EmbeddedServer, var: str) -> embedded.EmbeddedServer:
    if not processes.port_free(server.port):
        raise LaunchError(f"{server.name}: port {server.port} is in use (set {var} to move it)")
    try:
        return server.start()
    except (processes.ProcessDied, TimeoutError) as exc:
        first = str(exc).splitlines()[0]
        raise LaunchError(f"{first} (log: {server.log_path})") from None


@dataclass
class Supervisor:
    """Starts every service and keeps them up: restart with backoff, say why, say when healthy again."""

    say: Callable[[str], None]
    services: list[Supervised] = field(default_factory=list)
    stopping: bool = False

    def start(self) -> None:
        for svc in self.services:
            svc.proc.start()

    @property
    def all_ready(self) -> bool:
        return all(svc.ready for svc in self.services)

    def tick(self) -> str | None:
        """One round of supervision; returns a reason to give up, if any."""
        now = time.monotonic()
        for svc in self.services:
            if self.stopping:
                return None
            if svc.restart_at is not None:
                if now >= svc.restart_at:
                    svc.restart_at = None
                    svc.proc.start()
                continue
            if not svc.proc.alive():
                svc.ready = False
                svc.failures += 1
                when = "" if svc.ever_ready else " before it was ready"
                report = svc.exit_report()
                if svc.failures >= GIVE_UP_AFTER and not svc.ever_ready:
                    self.say(f"[red]✗[/] {svc.module} exited ({svc.proc.returncode}){when}: {report}")
                    return f"{svc.module} failed {svc.failures} times in a row; giving up"
                quick = time.monotonic() - svc.proc.started_at < 10
                delay = RESTART_BACKOFF_S[min(svc.failures - 1, len(RESTART_BACKOFF_S) - 1)] if quick else 0.5
                svc.restarts += 1
                self.say(
                    f"[red]✗[/] {svc.module} exited ({svc.proc.returncode}){when}; "
                    f"restarting in {delay}s (restart #{svc.restarts}): {report}"
                )
                svc.restart_at = now + delay
                continue
            if not svc.ready and svc.ready_check():
                svc.ready, svc.failures = True, 0
                if svc.ever_ready or svc.restarts:
                    self.say(
                        f"[green]✓[/] {svc.module} is back: healthy on {svc.addr}"
                        f" (after restart #{svc.restarts})"
                    )
                svc.ever_ready = True
        return None

    def stop(self) -> None:
        processes.stop_all([svc.proc.popen for svc in reversed(self.services) if svc.proc.popen], 10)


def run() -> int:
    out = make_console()

    def say(text: str) -> None:
        out.print(text, highlight=False)

    env = dict(os.environ)
    data_dir = Path(env.get("CLINIC_DATA_DIR", "./var")).resolve()
    logs_dir = data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    servers: list[embedded.EmbeddedServer] = []
    supervisor = Supervisor(say)

    def on_signal(signum, _frame) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            servers, urls = start_servers(env, data_dir, say)
        except LaunchError as exc:
            say(f"[red]✗[/] {exc}")
            return 1
        choose_addresses(env, say)
        auth = env.setdefault("CLINIC_AUTH", "jwt")
        if auth == "jwt" and not env.get("CLINIC_JWT_SECRET"):
            env["CLINIC_JWT_SECRET"] = dev_secret(data_dir)
            say(f"[yellow]![/] development JWT secret in {data_dir / 'dev-jwt-secret'}")
        env.setdefault("CLINIC_NOTIFY_DEV", "1")  # notification_svc prints what it would send
        if not any(env.get(var) for var in tls.VARS):  # internal mutual TLS by default, a development CA
            env.update(tls.ensure_dev_pki(data_dir))
        addrs = {module: env[ADDR_VARS[module]] for module in SERVICES}
        for module in SERVICES:
            service_env = processes.service_env(
                module, env, addrs=addrs, metrics_addr=env[METRICS_VARS[module]], **_urls(urls[module])
            )
            ports = {ADDR_VARS[module]: processes.port_of(addrs[module])}
            if env[METRICS_VARS[module]] != "off":
                ports[METRICS_VARS[module]] = processes.port_of(env[METRICS_VARS[module]])
            proc = starter.service_process(module, service_env, logs_dir)
            supervisor.services.append(Supervised(module, proc, addrs[module], ports))
        supervisor.start()
        announced = False
        while not supervisor.stopping:
            if (reason := supervisor.tick()) is not None:
                say(f"[red]✗[/] {reason}; see {logs_dir}")
                return 1
            if supervisor.all_ready and not announced:
                announced = True
                _print_ready(say, env, supervisor.services, logs_dir)
            time.sleep(0.2)
        return 0
    finally:
        say("stopping…")
        supervisor.stop()
        for server in reversed(servers):
            server.stop()
        say("[green]✓[/] stopped")


def _urls(found: dict[str, str]) -> dict[str, str]:
    return {"nats_url": found.get("NATS_URL"), "redis_url": found.get("REDIS_URL")}


def _page_served(env: dict[str, str]) -> bool:
    try:
        return page_dir(env) is not None
    except ConfigError:
        return False  # the gateway itself says why, once, as it exits


def _print_channels(say: Callable[[str], None], env: dict[str, str], logs: Path) -> None:
    on = [name for name, var in NOTIFY_CHANNELS if env.get(var)]
    if env.get("CLINIC_NOTIFY_DEV") == "1":
        say(f"Notifications: dev mode prints each message it would send in {logs / 'notification_svc.log'}")
    if on:
        say(f"Notifications: {', '.join(on)} on")
    else:
        say("  no channel configured: set CLINIC_SMTP_URL (e-mail), CLINIC_SMS_WEBHOOK_URL or")
        say("  CLINIC_WHATSAPP_WEBHOOK_URL with CLINIC_WEBHOOK_SECRET (docs/notifications.md)")


NOTIFY_CHANNELS = (
    ("email", "CLINIC_SMTP_URL"),
    ("sms", "CLINIC_SMS_WEBHOOK_URL"),
    ("whatsapp", "CLINIC_WHATSAPP_WEBHOOK_URL"),
)


def _print_ready(
    say: Callable[[str], None], env: dict[str, str], services: list[Supervised], logs: Path
) -> None:
    for svc in services:
        metrics = env[METRICS_VARS[svc.module]]
        where = f"metrics http://{metrics}/metrics" if metrics != "off" else "metrics off"
        say(f"[green]✓[/] {svc.module:<17} {svc.addr:<21} {where}")
    gateway_addr = env[ADDR_VARS[GATEWAY]]
    say(f"  logs in {logs}")
    say(f"[bold green]✓ gateway ready on {gateway_addr}[/]  — Ctrl-C stops everything\n")
    _print_channels(say, env, logs)
    if _page_served(env):
        scheme = "https" if env.get("CLINIC_TLS_CERT") else "http"
        sign_in = "sign in with `clinic token --role staff --sub desk-1`"
        say(f"Front desk page: {scheme}://{gateway_addr}/  ({sign_in})")
    header = ""
    if env.get("CLINIC_AUTH") == "jwt":
        token = mint(env["CLINIC_JWT_SECRET"], "operator", "admin")
        header = f"-H 'authorization: Bearer {token}' "
        env_line = f"export CLINIC_TOKEN={token}"
    else:
        env_line = "# CLINIC_AUTH=none: no token needed"
    say("Try it (admin token, valid 12 h; grpcurl is in .venv/bin):")
    say(f'  export PATH="{Path(".venv/bin").resolve()}:$PATH"')
    say(f"  grpcurl -plaintext {header}{gateway_addr} list")
    say(
        f'  grpcurl -plaintext {header}-d \'{{"gender": "GENDER_FEMALE"}}\' '
        f"{gateway_addr} clinic.v1.BookingService/ListServices"
    )
    say(f"  {env_line}")
    scheme = "https" if env.get("CLINIC_TLS_CERT") else "http"
    say("JSON over HTTP (the same calls; OpenAPI document without a token) and FHIR R4:")
    say(f"  curl -s {scheme}://{gateway_addr}/openapi.json | head -c 300")
    say(
        f"  curl -s {header}-H 'content-type: application/json' -d '{{}}' "
        f"{scheme}://{gateway_addr}/clinic.v1.DoctorService/ListDoctors"
    )
    say(f"  curl -s {header}{scheme}://{gateway_addr}/fhir/R4/Practitioner")
