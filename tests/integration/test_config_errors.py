"""Every configuration error ends every service with one line naming the variable, never a traceback.

Each service is started as in production (`python -m <service>`, over the test's real NATS and
Redis, with a valid configuration) with one bad value; it must exit non-zero having written exactly
one line to stderr.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clinic_common import tls
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES
from tests.harness import ROOT, System


@pytest.fixture(scope="module")
def held_port():
    """A port another process holds (listening, as another `make run` would)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-pki")
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (d / "a-directory.pem").mkdir()  # unreadable as a file, even by root (CI runs as root)
    other = tls.ensure_dev_pki(d / "other")  # a valid key, but not the certificate's
    return {
        "garbage": d / "garbage.pem",
        "unreadable": d / "a-directory.pem",
        "missing": d / "missing.pem",
        "other key": Path(other[tls.VARS[1]]),
    }


def cases(service: str, held: int, files: dict[str, Path]) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (the bad variables, what the one line must say)."""
    cert, key, ca = tls.VARS
    held_addr = f"127.0.0.1:{held}"
    garbage = f"'{files['garbage']}' is not a PEM"
    return {
        "ack wait": ({"CLINIC_ACK_WAIT_SECONDS": "ten"}, "CLINIC_ACK_WAIT_SECONDS='ten' is not a number"),
        "ack wait zero": ({"CLINIC_ACK_WAIT_SECONDS": "0"}, "CLINIC_ACK_WAIT_SECONDS=0 must be"),
        "replicas": ({"CLINIC_NATS_REPLICAS": "three"}, "CLINIC_NATS_REPLICAS='three' is not an integer"),
        "replicas range": ({"CLINIC_NATS_REPLICAS": "7"}, "CLINIC_NATS_REPLICAS=7 must be between 1 and 5"),
        "log level": ({"CLINIC_LOG_LEVEL": "loud"}, "CLINIC_LOG_LEVEL='loud' must be one of"),
        "tls missing": ({v: "" for v in tls.VARS}, f"internal services need mutual TLS: set {cert}"),
        "tls partial": ({ca: ""}, f"set all of {cert}, {key}, {ca}"),
        "cert unreadable": ({cert: str(files["unreadable"])}, f"{cert}='{files['unreadable']}' cannot be"),
        "key missing": ({key: str(files["missing"])}, f"{key}='{files['missing']}' cannot be read"),
        "cert invalid": ({cert: str(files["garbage"])}, f"{cert}={garbage} certificate"),
        "key invalid": ({key: str(files["garbage"])}, f"{key}={garbage} private key"),
        "ca invalid": ({ca: str(files["garbage"])}, f"{ca}={garbage} CA certificate"),
        "key mismatch": ({key: str(files["other key"])}, f"{key}='{files['other key']}' is not the key of"),
        "grpc port held": (
            {ADDR_VARS[service]: held_addr},
            f"gRPC port {held_addr} is already in use by another process: set {ADDR_VARS[service]} to",
        ),
        "metrics port held": (
            {METRICS_VARS[service]: held_addr},
            f"metrics port {held_addr} is already in use by another process: set {METRICS_VARS[service]} to",
        ),
    }


def run(env: dict[str, str], service: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", service], env=env, cwd=ROOT, capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -1, "", "still running after 20 s")


@pytest.mark.parametrize("service", SERVICES)
def test_each_bad_value_is_one_line(servers, service, held_port, bad_files, tmp_path):
    todo = cases(service, held_port, bad_files)
    if service == "gateway":  # the edge (Envoy) has no consumers: acks and replicas are not its to read
        todo = {k: v for k, v in todo.items() if not k.startswith(("ack wait", "replicas"))}

    def one(bad: tuple[dict[str, str], str]) -> subprocess.CompletedProcess:
        # A system of its own for each case, so no two cases share a port (a case that wrongly
        # starts must not make the next one fail for the wrong reason).
        base = System(servers, services=(service,)).service_env(service)
        return run({**base, **bad[0]}, service)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(todo, pool.map(one, todo.values()), strict=True))
    failures = []
    for name, proc in done.items():
        lines = proc.stderr.splitlines()
        said = todo[name][1]
        if proc.returncode == 0 or len(lines) != 1 or said not in lines[0] or "Traceback" in proc.stderr:
            failures.append(f"{name}: exit {proc.returncode}, stderr {proc.stderr[-600:]!r}")
        elif not lines[0].startswith("configuration error: "):
            failures.append(f"{name}: {lines[0]!r}")
    assert not failures, "\n".join(failures)
