"""python -m bench.edge: what the public edge itself costs, Python gateway against Envoy, same run.

Both edges run in front of the same stub backend (one process answering
clinic.v1.BookingService/GetBooking with a booking-sized reply and
clinic.v1.NotificationService/WatchBooking with 4 messages), with the same environment variables
and a checked admin JWT. For each edge: its own CPU (from /proc) per call at 64 calls in flight,
and p50/p99 at one call at a time; the direct row is the backend without an edge.

The Python gateway is the one at --python-rev (git archive of gateway/ at that commit, run with
today's clinic_common), so the comparison can be repeated after its removal.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clinic.v1 import common_pb2
from clinic_tools import embedded
from gateway.auth import mint

from .procstat import cpu_ms

ROOT = Path(__file__).resolve().parent.parent
UNARY = "/clinic.v1.BookingService/GetBooking"
STREAM = "/clinic.v1.NotificationService/WatchBooking"
STREAM_MESSAGES = 4
PYTHON_REV = "b9fe7d9"  # the last commit with the Python forwarding gateway


def _reply() -> bytes:
    booking = common_pb2.Booking(
        id=secrets.token_hex(16),
        patient=common_pb2.Patient(id="p-42", name="Asha Rao", gender=1, date_of_birth="1990-11-22"),
        appointment_date="2026-12-01",
        status=common_pb2.BOOKING_STATUS_CONFIRMED,
        status_message="Booking confirmed: ₹1,012.00",
    )
    for i in range(1, 5):
        booking.history.add(booking_id=booking.id, sequence=i, message="step", status=1)
    return booking.SerializeToString()


# ---- the stub backend (a subprocess: `python -m bench.edge backend PORT`) -----------------------


async def _backend(port: int) -> None:
    reply = _reply()
    event = common_pb2.BookingEvent(booking_id="b", sequence=1, message="Booking created").SerializeToString()

    async def unary(request: bytes, context) -> bytes:
        return reply

    async def stream(request: bytes, context):
        for _ in range(STREAM_MESSAGES):
            yield event

    handlers = {
        UNARY.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(unary),
    }
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler("clinic.v1.BookingService", handlers),
            grpc.method_handlers_generic_handler(
                "clinic.v1.NotificationService",
                {STREAM.rsplit("/", 1)[1]: grpc.unary_stream_rpc_method_handler(stream)},
            ),
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# ---- edges -----------------------------------------------------------------------------------


def _python_gateway_tree(rev: str, into: Path) -> Path:
    raw = subprocess.run(["git", "archive", rev, "gateway"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(into, filter="data")
    return into


def _start(kind: str, port: int, backend: int, secret: str, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        CLINIC_GATEWAY_ADDR=f"127.0.0.1:{port}",
        BOOKING_SVC_ADDR=f"127.0.0.1:{backend}",
        NOTIFICATION_SVC_ADDR=f"127.0.0.1:{backend}",
        DISCOUNT_SVC_ADDR=f"127.0.0.1:{backend}",
        CLINIC_GATEWAY_METRICS_ADDR="off",
        CLINIC_AUTH="jwt",
        CLINIC_JWT_SECRET=secret,
        CLINIC_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    cwd = ROOT
    if kind == "python":  # `-m` puts the working directory first on sys.path
        env["PYTHONPATH"] = f"{workdir}{os.pathsep}{ROOT}"
        cwd = workdir
    log = open(workdir / f"{kind}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
    )


async def _healthy(addr: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)).status == 1:
                    return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing healthy at {addr}")


# ---- load ------------------------------------------------------------------------------------


async def _calls(addr: str, token: str, kind: str, concurrency: int, seconds: float) -> list[float]:
    """Closed loop; returns each call's latency in ms."""
    metadata = (("authorization", f"Bearer {token}"),)
    channels = [grpc.aio.insecure_channel(addr) for _ in range(min(concurrency, 8))]
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        channel = channels[i % len(channels)]
        unary = channel.unary_unary(UNARY)
        stream = channel.unary_stream(STREAM)
        while time.perf_counter() < stop:
            start = time.perf_counter()
            if kind == "unary":
                await unary(b"\n\x04abcd", metadata=metadata, timeout=10)
            else:
                got = [m async for m in stream(b"\n\x04abcd", metadata=metadata, timeout=10)]
                assert len(got) == STREAM_MESSAGES
            latencies.append((time.perf_counter() - start) * 1000)

    try:
        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    finally:
        for channel in channels:
            await channel.close()
    return latencies


async def _measure(addr: str, token: str, pid: int | None, seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("unary", "stream"):
        await _calls(addr, token, kind, 8, 1.0)  # warm-up
        before = cpu_ms(pid) if pid else 0.0
        calls = await _calls(addr, token, kind, 64, seconds)
        after = cpu_ms(pid) if pid else 0.0
        out[f"{kind}_cpu_ms"] = (after - before) / len(calls) if pid else float("nan")
        out[f"{kind}_per_s"] = len(calls) / seconds
        one = sorted(await _calls(addr, token, kind, 1, seconds / 2))
        out[f"{kind}_p50_ms"] = statistics.median(one)
        out[f"{kind}_p99_ms"] = one[int(len(one) * 0.99)]
    return out


async def _phase(addr: str, token: str, pid: int | None, seconds: float) -> dict[str, float]:
    await _healthy(addr)
    return await _measure(addr, token, pid, seconds)


def run(seconds: float, python_rev: str) -> dict[str, dict[str, float]]:
    import uvloop

    secret = secrets.token_urlsafe(32)
    token = mint(secret, "bench", "admin")  # admins are not rate-limited by default
    backend_port = embedded.free_port()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="clinic-edge-bench-") as tmp:
        workdir = Path(tmp)
        _python_gateway_tree(python_rev, workdir)
        backend = subprocess.Popen(
            [sys.executable, "-m", "bench.edge", "backend", str(backend_port)], cwd=ROOT
        )
        try:
            direct = f"127.0.0.1:{backend_port}"
            results["direct (no edge)"] = uvloop.run(_phase(direct, token, None, seconds))
            for kind, label in (
                ("python", f"Python gateway ({python_rev})"),
                ("envoy", "Envoy (python -m gateway)"),
            ):
                port = embedded.free_port()
                proc = _start(kind, port, backend_port, secret, workdir)
                try:
                    results[label] = uvloop.run(_phase(f"127.0.0.1:{port}", token, proc.pid, seconds))
                    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
                    assert comm == ("envoy" if kind == "envoy" else "python"), f"{label} runs {comm}"
                finally:
                    proc.terminate()
                    proc.wait(10)
        finally:
            backend.terminate()
            backend.wait(10)
    return results


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| edge | CPU ms/call unary | CPU ms/call 4-msg stream | calls/s unary c=64 | p50 ms unary c=1"
        " | p50 ms stream c=1 | p99 ms unary c=1 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_ms(r['unary_cpu_ms'])} | {_ms(r['stream_cpu_ms'])} | {r['unary_per_s']:,.0f}"
            f" | {r['unary_p50_ms']:.2f} | {r['stream_p50_ms']:.2f} | {r['unary_p99_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["backend"]:
        import uvloop

        uvloop.run(_backend(int(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per closed-loop phase")
    parser.add_argument("--python-rev", default=PYTHON_REV, help="commit whose gateway/ is the Python edge")
    args = parser.parse_args()
    print(table(run(args.seconds, args.python_rev)))


if __name__ == "__main__":
    main()
