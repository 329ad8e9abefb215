"""`make run` (`clinic run`) as a user runs it: it supervises start-up and running (restarts a service
that dies, says why and when it is back), and Ctrl-C stops every process it started, leaving no orphan."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import grpc

from clinic.v1 import common_pb2 as c
from clinic_cli.launcher import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES
from clinic_tools import embedded, processes
from tests.harness import ROOT, SECRET, Client, future_date, patient, wait_for


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of every process whose parent is `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "clinic_cli", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _hold(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:port, as another program (a second `make run`) would; None if it is taken."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen()
    return sock


async def test_make_run_supervises_start_up_and_running(tmp_path):
    """The gateway's port is taken when `make run` starts: the gateway dies at once, is reported with
    the port and the variable that moves it, restarted with backoff, and comes up once the port is
    free. Default internal and metrics ports held by someone else are moved, not fought over. A
    SIGKILLed service is reported, restarted, announced healthy again, and bookings resume. Ctrl-C
    stops every process the launcher started. Output goes to a pipe: no line is wrapped."""
    gateway_port = embedded.free_port()
    env = {
        **os.environ,
        "CLINIC_DATA_DIR": str(tmp_path),
        "CLINIC_NATS_PORT": str(embedded.free_port()),
        "CLINIC_NATS_MONITOR_PORT": str(embedded.free_port()),
        "CLINIC_REDIS_PORT": str(embedded.free_port()),
        "CLINIC_JWT_SECRET": SECRET,
        "CLINIC_GATEWAY_ADDR": f"127.0.0.1:{gateway_port}",
    }
    for var in ("NATS_URL", "REDIS_URL", "COLUMNS"):
        env.pop(var, None)
    for module in SERVICES:  # the launcher chooses internal and metrics ports itself
        if module != "gateway":
            env.pop(ADDR_VARS[module], None)
        env.pop(METRICS_VARS[module], None)
    held = {port: _hold(port) for port in (*DEFAULT_PORTS.values(), *DEFAULT_METRICS_PORTS.values())}
    gateway_holder = _hold(gateway_port)
    assert gateway_holder is not None
    launcher = _start(env)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(launcher.stdout.readline, "")), daemon=True)
    reader.start()

    async def printed(text: str) -> bool:
        return any(text in line for line in output)

    client = Client(env["CLINIC_GATEWAY_ADDR"])
    seen: set[int] = set()
    try:
        taken = f"port {gateway_port} is in use (set CLINIC_GATEWAY_ADDR to move it)"
        await wait_for(lambda: printed(taken), timeout_s=60, what=f"the launcher to say {taken!r}")
        [line] = [line for line in output if taken in line][:1]
        assert line.startswith("✗ gateway exited (") and "before it was ready; restarting in" in line, line
        gateway_holder.close()
        await wait_for(
            lambda: printed("gateway ready"), timeout_s=90, what="make run to print 'gateway ready'"
        )
        for module in SERVICES:
            for defaults in (DEFAULT_PORTS, DEFAULT_METRICS_PORTS):
                if held.get(defaults.get(module)) is not None:
                    moved = f"{module}: port {defaults[module]} is in use, using "
                    assert await printed(moved), "".join(output)
        for module in SERVICES:
            [ready_line] = [ln for ln in output if ln.startswith(f"✓ {module} ") and " metrics " in ln]
            addr = ready_line.split()[2]
            assert processes.port_of(addr) not in {p for p, s in held.items() if s is not None}, ready_line
        # The page and the "Try it" lines follow "gateway ready": wait for them, do not assume them.
        page = f"http://{env['CLINIC_GATEWAY_ADDR']}/"
        await wait_for(
            lambda: printed("BookingService/ListServices"), timeout_s=30, what="the grpcurl line to try"
        )
        [try_line] = [line for line in output if "BookingService/ListServices" in line]
        assert any(line.startswith(f"Front desk page: {page}") for line in output), "".join(output)
        html = await asyncio.to_thread(_get, page)  # served by Envoy, no token needed
        assert "<title>Clinic front desk</title>" in html
        assert try_line.strip().startswith("grpcurl -plaintext -H 'authorization: Bearer "), try_line

        children = _children(launcher.pid)
        seen |= set(children)
        [booking_pid] = [p for p, cmd in children.items() if "-m booking_svc" in cmd]
        assert sum("nats-server" in cmd for cmd in children.values()) == 1
        assert sum("valkey" in cmd or "redis" in cmd for cmd in children.values()) == 1

        os.kill(booking_pid, signal.SIGKILL)
        await wait_for(lambda: printed("booking_svc exited (-9); restarting"), what="the crash reported")
        await wait_for(lambda: printed("booking_svc is back: healthy on"), what="the recovery reported")

        async def booked():
            try:
                return await client.create(patient(), ["gen-consult"], appointment_date=future_date())
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err  # only while it restarts
                return None

        booking = await wait_for(booked, timeout_s=30, what="a booking accepted after the restart")
        assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
        restarted = _children(launcher.pid)
        seen |= set(restarted)
        assert [p for p, cmd in restarted.items() if "-m booking_svc" in cmd] != [booking_pid]
    finally:
        await client.close()
        gateway_holder.close()
        for sock in held.values():
            if sock is not None:
                sock.close()
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = await asyncio.to_thread(launcher.wait, 30)
        finally:
            if launcher.poll() is None:
                launcher.kill()
    reader.join(timeout=5)
    assert code == 0, "".join(output[-20:])
    assert any("stopped" in line for line in output[-3:])

    async def all_gone() -> bool:
        return not any(_alive(p) for p in seen)

    await wait_for(all_gone, timeout_s=5, what="every process make run started to exit after Ctrl-C")


def test_a_taken_nats_port_is_one_line_naming_the_variable(tmp_path):
    nats_port = embedded.free_port()
    holder = _hold(nats_port)
    env = {**os.environ, "CLINIC_DATA_DIR": str(tmp_path), "CLINIC_NATS_PORT": str(nats_port)}
    env.pop("NATS_URL", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "clinic_cli", "run"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert done.returncode == 1
    assert f"✗ nats-server: port {nats_port} is in use (set CLINIC_NATS_PORT to move it)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()
