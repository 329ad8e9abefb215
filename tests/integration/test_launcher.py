"""`make run` (`clinic run`) as a user runs it: it restarts a service that crashes and says so, and
Ctrl-C stops every process it started (servers and services), leaving no orphan."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc

from clinic.v1 import common_pb2 as c
from clinic_common import embedded
from clinic_common.config import ADDR_VARS, METRICS_VARS, SERVICES
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


async def test_make_run_restarts_a_crashed_service_and_ctrl_c_stops_everything(tmp_path):
    env = {
        **os.environ,
        "CLINIC_DATA_DIR": str(tmp_path),
        "CLINIC_NATS_PORT": str(embedded.free_port()),
        "CLINIC_NATS_MONITOR_PORT": str(embedded.free_port()),
        "CLINIC_REDIS_PORT": str(embedded.free_port()),
        "CLINIC_JWT_SECRET": SECRET,
        "COLUMNS": "200",
    }
    env.pop("NATS_URL", None)
    env.pop("REDIS_URL", None)
    for module in SERVICES:
        env[ADDR_VARS[module]] = f"127.0.0.1:{embedded.free_port()}"
        env[METRICS_VARS[module]] = f"127.0.0.1:{embedded.free_port()}"
    launcher = _start(env)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(launcher.stdout.readline, "")), daemon=True)
    reader.start()

    async def printed(text: str) -> bool:
        return any(text in line for line in output)

    client = Client(env["CLINIC_GATEWAY_ADDR"])
    seen: set[int] = set()
    try:
        await wait_for(
            lambda: printed("gateway ready"), timeout_s=90, what="make run to print 'gateway ready'"
        )
        children = _children(launcher.pid)
        seen |= set(children)
        [booking_pid] = [p for p, cmd in children.items() if "-m booking_svc" in cmd]
        assert sum("nats-server" in cmd for cmd in children.values()) == 1
        assert sum("valkey" in cmd or "redis" in cmd for cmd in children.values()) == 1

        os.kill(booking_pid, signal.SIGKILL)
        await wait_for(lambda: printed("booking_svc exited (-9); restarting"), what="the crash reported")

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
