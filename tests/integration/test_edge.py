"""The Envoy edge on its own, in front of a recording backend: what reaches the services, and what not.

The backend answers every call and keeps the metadata it received, so these tests see exactly
what the edge hands on: verified identity only (never a caller's forged copy, on authenticated and
open routes alike), a request id, the caller's trace context; and what it refuses, with which code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from clinic_common import tls
from clinic_tools import embedded
from gateway.auth import mint
from tests.harness import ROOT

SECRET = "edge-test-secret-" + "y" * 24
LIST = "/clinic.v1.BookingService/ListServices"
HEALTH = "/grpc.health.v1.Health/Check"
PKI = tls.ensure_dev_pki(Path(tempfile.mkdtemp(prefix="edge-pki-")))
FORGED = (("x-clinic-sub", "forged-admin"), ("x-clinic-role", "admin"))


class Recorder:
    """A backend for every route: answers at once and remembers each call's metadata by test mark."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, str]] = {}
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.server.add_generic_rpc_handlers([self])
        # The services take only mutual TLS; so does this stand-in, with the same development CA.
        credentials = tls.InternalTls.from_env(PKI).server_credentials()
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)

    def service(self, details: grpc.HandlerCallDetails):
        serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            if "x-test-mark" in metadata:
                self.seen[metadata["x-test-mark"]] = metadata
            return serving.SerializeToString() if details.method == HEALTH else b""

        return grpc.unary_unary_rpc_method_handler(answer)


def start_edge(backend_port: int, **env: str) -> tuple[subprocess.Popen, str, str]:
    port, metrics = embedded.free_port(), embedded.free_port()
    full = dict(os.environ)
    full.update(
        CLINIC_GATEWAY_ADDR=f"127.0.0.1:{port}",
        BOOKING_SVC_ADDR=f"127.0.0.1:{backend_port}",
        NOTIFICATION_SVC_ADDR=f"127.0.0.1:{backend_port}",
        DISCOUNT_SVC_ADDR=f"127.0.0.1:{backend_port}",
        CLINIC_GATEWAY_METRICS_ADDR=f"127.0.0.1:{metrics}",
        CLINIC_AUTH="jwt",
        CLINIC_JWT_SECRET=SECRET,
        CLINIC_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
        **PKI,
    )
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        env=full,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, f"127.0.0.1:{port}", f"127.0.0.1:{metrics}"


async def ready(addr: str, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(addr) as channel:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "edge exited"
            try:
                await channel.unary_unary(HEALTH)(
                    health_pb2.HealthCheckRequest().SerializeToString(), timeout=1
                )
                return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
    raise TimeoutError(f"edge at {addr} not ready")


@pytest.fixture(scope="module")
async def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    await rec.server.start()
    yield rec
    await rec.server.stop(0)


@pytest.fixture(scope="module")
async def edge(recorder):
    proc, addr, metrics = start_edge(recorder.port, CLINIC_RATE_LIMIT_RPS="2", CLINIC_RATE_LIMIT_BURST="3")
    try:
        await ready(addr, proc)
        yield addr, metrics
    finally:
        proc.terminate()
        proc.wait(10)


def process_name(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def bearer(sub: str, role: str = "patient") -> tuple[str, str]:
    return ("authorization", f"Bearer {mint(SECRET, sub, role)}")


async def call(addr: str, method: str, metadata, body: bytes = b"") -> grpc.aio.AioRpcError | None:
    async with grpc.aio.insecure_channel(addr) as channel:
        try:
            await channel.unary_unary(method)(body, metadata=tuple(metadata), timeout=5)
        except grpc.aio.AioRpcError as err:
            return err
    return None


async def test_forged_identity_never_reaches_a_service(edge, recorder):
    addr, _ = edge
    mark = uuid.uuid4().hex
    assert await call(addr, LIST, [bearer("p-real"), *FORGED, ("x-test-mark", mark)]) is None
    seen = recorder.seen[mark]
    assert (seen["x-clinic-sub"], seen["x-clinic-role"]) == ("p-real", "patient")
    assert "authorization" not in seen  # the token stops at the edge

    # An open route (no token checked): the forged headers are dropped, not passed on.
    mark = uuid.uuid4().hex
    assert await call(addr, HEALTH, [*FORGED, ("x-test-mark", mark)], b"") is None
    assert "x-clinic-sub" not in recorder.seen[mark] and "x-clinic-role" not in recorder.seen[mark]
    # Nor with a valid token on an open route.
    mark = uuid.uuid4().hex
    assert await call(addr, HEALTH, [bearer("p-open"), *FORGED, ("x-test-mark", mark)], b"") is None
    assert "forged-admin" not in recorder.seen[mark].values()


async def test_forged_identity_is_replaced_by_the_development_identity_without_auth(recorder):
    """CLINIC_AUTH=none: nobody is verified, so every call carries the explicit development
    identity (services refuse a call with none), never what the caller claimed."""
    proc, addr, _ = start_edge(recorder.port, CLINIC_AUTH="none")
    try:
        await ready(addr, proc)
        mark = uuid.uuid4().hex
        assert await call(addr, LIST, [*FORGED, ("x-test-mark", mark)]) is None
        seen = recorder.seen[mark]
        assert (seen.get("x-clinic-sub"), seen.get("x-clinic-role")) == ("anonymous", "admin")
    finally:
        proc.terminate()
        proc.wait(10)


async def test_request_id_and_trace_context_reach_the_service(edge, recorder):
    addr, _ = edge
    mark, trace = uuid.uuid4().hex, f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    assert await call(addr, LIST, [bearer("p-trace"), ("traceparent", trace), ("x-test-mark", mark)]) is None
    seen = recorder.seen[mark]
    assert seen["traceparent"] == trace
    assert seen["x-request-id"]
    mark = uuid.uuid4().hex
    assert (
        await call(addr, LIST, [bearer("p-trace"), ("x-request-id", "app-42"), ("x-test-mark", mark)]) is None
    )
    assert recorder.seen[mark]["x-request-id"] == "app-42"


async def test_rate_limit_is_per_caller_resource_exhausted_with_retry_info(edge):
    addr, _ = edge
    hammer = bearer(f"hammer-{uuid.uuid4().hex[:8]}")
    results = [await call(addr, LIST, [hammer]) for _ in range(8)]
    refused = [r for r in results if r is not None]
    assert results[0] is None and refused, "burst 3 at 2/s: 8 calls back to back must be refused some"
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    status = rpc_status.from_call(refused[0])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.ToTimedelta().total_seconds() > 0
    # Another caller is not held back by the first one's bucket; nor is an admin.
    assert await call(addr, LIST, [bearer(f"calm-{uuid.uuid4().hex[:8]}")]) is None
    admin = bearer("ops", "admin")
    assert all([await call(addr, LIST, [admin]) is None for _ in range(8)])


async def test_oversized_request_is_resource_exhausted(edge):
    addr, _ = edge
    err = await call(addr, LIST, [bearer("p-big")], b"\n" + b"x" * 70_000)
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_backend_down_is_unavailable_naming_it(recorder):
    dead = embedded.free_port()
    proc, addr, _ = start_edge(recorder.port, NOTIFICATION_SVC_ADDR=f"127.0.0.1:{dead}")
    try:
        await ready(addr, proc)
        err = await call(addr, "/clinic.v1.NotificationService/WatchBooking", [bearer("p-x")])
        # (a unary call on a streaming method's path is all the edge needs to route it)
        assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE
        assert err.details().startswith("notification_svc unavailable: "), err.details()
    finally:
        proc.terminate()
        proc.wait(10)


def test_metrics_are_prometheus_and_the_admin_interface_is_not_exposed(edge):
    _, metrics = edge
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert "envoy_cluster_upstream_rq" in text and "# TYPE" in text
    for path in ("/quitquitquit", "/config_dump", "/stats", "/clusters", "/runtime_modify"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(
                urllib.request.Request(f"http://{metrics}{path}", method="POST"), timeout=5
            )
        assert caught.value.code == 404


async def test_the_gateway_process_is_envoy_and_stops_cleanly(recorder):
    proc, addr, _ = start_edge(recorder.port)
    try:
        await ready(addr, proc)
        assert process_name(proc.pid) == "envoy"  # exec'd: the same pid
    finally:
        proc.terminate()
    assert proc.wait(10) == 0  # SIGTERM reached envoy itself, which drained and exited


async def test_grpc_web_over_http1_reaches_the_service(edge, recorder):
    """grpc-web (a browser's framing, over HTTP/1.1) is translated to gRPC for the services."""
    addr, _ = edge
    mark = uuid.uuid4().hex
    request = urllib.request.Request(
        f"http://{addr}{LIST}",
        data=b"\x00\x00\x00\x00\x00",  # one empty message, grpc-web framed
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": bearer("p-web")[1],
            "x-test-mark": mark,
        },
        method="POST",
    )

    def post() -> bytes:  # in a thread: the recording backend runs on this event loop
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.read()

    body = await asyncio.to_thread(post)
    assert b"grpc-status:0" in body.replace(b" ", b"")  # the trailer frame
    assert recorder.seen[mark]["x-clinic-sub"] == "p-web"
