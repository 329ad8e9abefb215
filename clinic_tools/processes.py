"""Starting, readying and stopping local processes, and building a service's environment.

The one copy used by `make run` (clinic_cli.launcher), `clinic scenarios`' throwaway system, the
benchmark (bench.launcher), the embedded servers (clinic_tools.embedded) and the tests
(tests.harness). Readiness is a condition polled with a deadline, never a sleep.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clinic_common.config import ADDR_VARS, METRICS_VARS

# Linux hands out outgoing connections' local ports from 32768-60999: a listener picked there can
# find its port briefly taken. Ports this module picks stay below it.
EPHEMERAL_LOW = 32768


class ProcessDied(RuntimeError):
    """A process exited while we waited for it to be ready."""


# Ports handed out for listeners come from below the ephemeral range: a port the kernel picked
# (bind to port 0) lies inside it, where any outgoing connection may take it before the service
# binds it ("port already in use" seen in a clean-clone run). Below it only listeners compete.
FREE_PORT_LOW = 20000
_handed_out: set[int] = set()


def port_share(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(index, count): this process picks only ports p with p % count == index.

    `make test` runs the suite in pytest-xdist workers (gw0, gw1 ...), each starting its own servers:
    a port one worker picked but has not bound yet must never be picked by another. Each worker (and
    every process it starts, which inherits its environment) takes its own residue class of the range.
    Outside xdist: (0, 1), every port.
    """
    env = os.environ if env is None else env
    worker, count = env.get("PYTEST_XDIST_WORKER", ""), env.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 1):
        return 0, 1
    return int(worker[2:]) % int(count), int(count)


def free_port() -> int:
    """A port nobody listens on now, below the ephemeral range, not handed out before by this process
    (and, under pytest-xdist, from this worker's share: port_share)."""
    rng = random.SystemRandom()
    index, count = port_share()
    first, last = -(-(FREE_PORT_LOW - index) // count), (EPHEMERAL_LOW - 1 - index) // count
    for _ in range(1000):
        port = index + count * rng.randint(first, last)
        if port not in _handed_out and port_free(port):
            _handed_out.add(port)
            return port
    raise OSError(f"no free port between {FREE_PORT_LOW} and {EPHEMERAL_LOW}")


def free_port_below(limit: int) -> int:
    """free_port, below `limit` too (a Redis Cluster node's bus port is its port + 10000)."""
    while (port := free_port()) >= limit:
        pass
    return port


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener could bind host:port now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, taken: Collection[int] = (), fallback: int = 20000) -> int:
    """`preferred` if it is free, else the first free port from `preferred` (or `fallback`, when
    `preferred` lies in the ephemeral range) up to the start of that range."""
    if preferred not in taken and port_free(preferred):
        return preferred
    port = preferred if preferred < EPHEMERAL_LOW else fallback
    index, count = port_share()
    while port < EPHEMERAL_LOW:
        if port % count == index and port not in taken and port_free(port):
            return port
        port += 1
    raise OSError(
        f"no free port between {preferred if preferred < EPHEMERAL_LOW else fallback} and {EPHEMERAL_LOW}"
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def grpc_serving(addr: str, timeout_s: float = 0.5, credentials=None, options: Sequence = ()) -> bool:
    """True when grpc.health.v1 at addr answers SERVING.

    `credentials` (grpc.ChannelCredentials, e.g. the internal mTLS client's) checks a service that
    accepts only TLS; `options` may carry ("grpc.ssl_target_name_override", name).
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = (
        grpc.secure_channel(addr, credentials, options=list(options))
        if credentials is not None
        else grpc.insecure_channel(addr, options=list(options))
    )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


PUBLIC_EDGE = "gateway"  # serves the public (plaintext, or CLINIC_TLS_*) port; the rest are internal


def http_healthy(addr: str, env: Mapping[str, str], timeout_s: float = 0.5) -> bool:
    """GET /healthz answers 200 (over internal mutual TLS when the environment turns it on)."""
    import http.client

    from clinic_common import tls
    from clinic_common.config import ConfigError

    host, _, port = addr.rpartition(":")
    try:
        context = tls.ssl_client_context(env)
    except ConfigError:
        return False
    if context is None:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    else:
        name = env.get("CLINIC_INTERNAL_TLS_NAME", "").strip() or tls.DEFAULT_NAME
        conn = _NamedHTTPS(host, int(port), name, context, timeout_s)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _NamedHTTPS(host: str, port: int, name: str, context, timeout_s: float):
    """An HTTPS connection to host:port that checks the certificate for `name` (the internal one)."""
    import http.client
    import socket

    class Conn(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((host, port), timeout_s)
            self.sock = context.wrap_socket(raw, server_hostname=name)

    return Conn(host, port, timeout=timeout_s, context=context)


def readiness(module: str, addr: str, env: Mapping[str, str]) -> Callable[[], bool]:
    """The one readiness check of a service started with `env`: its health SERVING at `addr`.

    An internal service whose environment turns internal mutual TLS on (CLINIC_INTERNAL_TLS_*)
    answers only TLS clients with a certificate, so it is checked with the same client identity; a
    gateway serving public TLS (CLINIC_TLS_*) is ready once its port accepts connections.
    """
    from clinic_common.config import HTTP_SERVICES

    if module in HTTP_SERVICES:
        return lambda: http_healthy(addr, env)
    if module != PUBLIC_EDGE:
        from clinic_common.config import ConfigError
        from clinic_common.tls import InternalTls

        try:
            tls = InternalTls.from_env(env)
        except ConfigError:  # the service stops on it with its own one line; the check just fails
            return lambda: False
        if tls is not None:
            credentials, options = tls.channel_credentials(), tls.channel_options()
            return lambda: grpc_serving(addr, 0.5, credentials, options)
    elif env.get("CLINIC_TLS_CERT", "").strip():
        # public TLS with a certificate whose CA we are not told: listening is the best sign we have
        host, _, port = addr.rpartition(":")
        return lambda: port_open(int(port), host)
    return lambda: grpc_serving(addr)


@dataclass
class Process:
    """One child process with its log file (appended to, so restarts keep the history)."""

    name: str
    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    new_session: bool = False  # servers: Ctrl-C in the terminal reaches only the launcher
    popen: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    log_offset: int = 0  # where this run's output starts in the log

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                list(self.args),
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Poll `ready` until true; ProcessDied if the process exits first, TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessDied(
                    f"{self.name} exited with {self.returncode} at start: {self.error_line()}\n"
                    f"{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready within {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None:
            stop_pid(self.popen, timeout_s, sig)

    def kill(self) -> None:
        self.stop(sig=signal.SIGKILL)

    def output(self) -> str:
        """What this run (since the last start) wrote to its log."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]

    def error_line(self) -> str:
        return first_error(self.output())


def stop_pid(proc: subprocess.Popen, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal one process we started and reap it; SIGKILL if it outlives `timeout_s`."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_all(procs: Sequence[subprocess.Popen], timeout_s: float = 15.0) -> None:
    """SIGTERM every one at once, then wait for them within one shared deadline (SIGKILL after it).

    One SIGTERM each: a service takes a second one as "exit now", skipping its clean shutdown."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def first_error(output: str) -> str:
    """The line of a process's output that says why it stopped.

    A configuration error is one line; a traceback's reason is its last line ("OSError: [Errno 98]
    Address already in use"); a structured log line at error level names its event.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("configuration error:"):
            return line
    if "Traceback (most recent call last):" in lines:
        after = lines[lines.index("Traceback (most recent call last):") :]
        found = [line for line in after if _EXCEPTION_LINE.match(line)]
        if found:
            return found[0]
    for line in lines:
        if '"level": "error"' in line or '"level": "critical"' in line or " [error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "(nothing in its log)"


def port_of(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def service_env(
    module: str,
    base: Mapping[str, str],
    *,
    addrs: Mapping[str, str],
    metrics_addr: str,
    nats_url: str | None = None,
    redis_url: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment one service process runs with.

    `addrs` maps every service in clinic_common.config.SERVICES to its address (a comma-separated
    list when several instances run): each service listens on its own and dials the others'.
    Extra variables every service needs (internal TLS files, say) belong here, once.
    """
    env = dict(base)
    if nats_url:
        env["NATS_URL"] = nats_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    for name, addr in addrs.items():
        env[ADDR_VARS[name]] = addr
    env[METRICS_VARS[module]] = metrics_addr
    env.update(overrides or {})
    return env


def python_module(module: str) -> list[str]:
    """The command line of `python -m module` with this interpreter (the project's .venv)."""
    return [sys.executable, "-m", module]
