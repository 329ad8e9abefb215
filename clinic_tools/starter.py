"""The one system starter: credentials -> NATS -> valkey -> ACLs -> services -> wait healthy.

Used by `make run` (clinic_cli/launcher.py, which supervises the services itself), `clinic
scenarios`' throwaway system (clinic_cli/sandbox.py), the bench (bench/launcher.py) and the tests
(tests/harness.py). The services are the rows of clinic_common/services.py, each started as
`python -m <service>` configured only by environment variables, each with its own least-privilege
NATS user and Redis ACL user (clinic_tools/access.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clinic_tools import access, embedded, processes

StartServer = Callable[[embedded.EmbeddedServer], embedded.EmbeddedServer]


def _start(server: embedded.EmbeddedServer) -> embedded.EmbeddedServer:
    return server.start()


@dataclass
class Servers:
    """nats-server (one node, or a JetStream cluster) and valkey in `data_dir`, with one NATS user
    and one Redis ACL user per service plus `ops` (full access), passwords kept in the data dir."""

    data_dir: Path
    nats_port: int = field(default_factory=embedded.free_port)
    monitor_port: int = field(default_factory=embedded.free_port)
    redis_port: int = field(default_factory=embedded.free_port)
    nats: embedded.EmbeddedServer | None = None
    redis: embedded.EmbeddedServer | None = None
    creds: access.Credentials | None = None
    nats_nodes: int = 1  # >1: a JetStream cluster; `nats` is then its first node
    nats_cluster: list[embedded.EmbeddedServer] = field(default_factory=list)
    node_ports: list[int] = field(default_factory=list)  # a cluster's client ports (first: nats_port)
    monitor_ports: list[int] = field(default_factory=list)
    route_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.creds = access.Credentials.load_or_create(self.data_dir)
        if self.nats_nodes > 1:
            others = self.nats_nodes - 1
            self.node_ports = self.node_ports or [self.nats_port] + [
                embedded.free_port() for _ in range(others)
            ]
            self.monitor_ports = self.monitor_ports or [self.monitor_port] + [
                embedded.free_port() for _ in range(others)
            ]
            self.route_ports = self.route_ports or [embedded.free_port() for _ in range(self.nats_nodes)]

    def start(self, start: StartServer = _start) -> Servers:
        self.start_nats(start)
        self.start_redis(start)
        return self

    def start_nats(self, start: StartServer = _start) -> None:
        config = access.write_nats_config(self.creds, self.data_dir / "nats.json")
        if self.nats_nodes == 1:
            self.nats = start(
                embedded.nats_server(self.data_dir, self.nats_port, self.monitor_port, config_file=config)
            )
            return
        self.nats_cluster = embedded.nats_cluster(
            self.data_dir, self.node_ports, self.monitor_ports, self.route_ports, config_file=config
        )
        for node in self.nats_cluster:
            start(node)
        self.nats = self.nats_cluster[0]

    def start_redis(self, start: StartServer = _start) -> None:
        acl = access.write_redis_acl(self.creds, self.data_dir / "users.acl")
        self.redis = start(embedded.redis_server(self.data_dir, self.redis_port, acl_file=acl))

    def restart_node(self, index: int, down_s: float = 0.5) -> None:
        node = self.nats_cluster[index]
        node.kill()
        time.sleep(down_s)
        node.start()

    def stop(self) -> None:
        for server in (*(self.nats_cluster or [self.nats]), self.redis):
            if server:
                server.stop()

    @property
    def servers(self) -> list[embedded.EmbeddedServer]:
        return [s for s in (*(self.nats_cluster or [self.nats]), self.redis) if s is not None]

    def nats_urls(self, user: str) -> str:
        """`user`'s URLs of every NATS node, comma-separated (NATS_URL)."""
        return ",".join(self.creds.nats_url(user, p) for p in (self.node_ports or [self.nats_port]))

    _nats_urls = nats_urls

    @property
    def nats_url(self) -> str:
        """The operators' full-access user (tests inject and inspect with it)."""
        return self.nats_servers[0]

    @property
    def nats_servers(self) -> list[str]:
        return self.nats_urls(access.OPS).split(",")

    @property
    def redis_url(self) -> str:
        return self.creds.redis_url(access.OPS, self.redis_port)

    def urls_for(self, module: str) -> dict[str, str]:
        return {
            "NATS_URL": self.nats_urls(module),
            "REDIS_URL": self.creds.redis_url(module, self.redis_port),
        }

    def service_env(
        self,
        module: str,
        base: Mapping[str, str],
        *,
        addrs: Mapping[str, str],
        metrics_addr: str,
        overrides: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment of one `module` process over these servers, as its own user."""
        urls = self.urls_for(module)
        return processes.service_env(
            module,
            base,
            addrs=addrs,
            metrics_addr=metrics_addr,
            nats_url=urls["NATS_URL"],
            redis_url=urls["REDIS_URL"],
            overrides=overrides,
        )


def module_of(name: str) -> str:
    """`booking_svc@2` (a second instance) -> `booking_svc`."""
    return name.partition("@")[0]


def service_process(
    name: str, env: Mapping[str, str], logs: Path, cwd: Path | None = None
) -> processes.Process:
    """`python -m <module>` for the process `name` (`module` or `module@N`), logging to logs/<name>.log."""
    return processes.Process(name, processes.python_module(module_of(name)), logs / f"{name}.log", env, cwd)


def wait_healthy(name: str, proc: processes.Process, addr: str, timeout_s: float = 30.0) -> None:
    """Until `name` answers SERVING at `addr` (ProcessDied if it exits first, TimeoutError at the end)."""
    proc.wait_ready(processes.readiness(module_of(name), addr, proc.env or {}), timeout_s)


def start_services(
    procs: Mapping[str, processes.Process], addrs: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Start every process at once, then wait for each to be healthy at its address, in order."""
    for proc in procs.values():
        proc.start()
    for name, proc in procs.items():
        try:
            wait_healthy(name, proc, addrs[name], timeout_s)
        except (processes.ProcessDied, TimeoutError) as exc:
            exc.service = name  # which one, for a caller that says it in one line
            raise


def stop_services(procs: Sequence[processes.Process], timeout_s: float = 15.0) -> None:
    """SIGTERM all (last started first), SIGKILL what outlives the shared deadline."""
    processes.stop_all([p.popen for p in reversed(procs) if p.popen], timeout_s)
