"""The README's grpcurl commands, run as printed (address, token and booking id filled in)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from clinic.v1 import frontdesk_pb2, frontdesk_pb2_grpc
from tests.harness import ROOT, Client, future_date, patient

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
BUF = str(Path(sys.executable).parent / "buf")


def readme_commands(tool: str = "grpcurl") -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands, current, quote_open = [], "", False
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if not current and not line.startswith(tool):
                continue
            current += line.split("  #")[0].rstrip() if not quote_open else line
            current += "\n"
            quote_open = current.count("'") % 2 == 1
            if not quote_open and not current.rstrip().endswith("\\"):
                commands.append(current.strip())
                current = ""
    return commands


def test_the_readme_has_a_grpcurl_command_for_every_rpc():
    text = " ".join(readme_commands())
    for rpc in (
        "ListServices",
        "CreateBooking",
        "GetBooking",
        "ListBookings",
        "CancelBooking",
        "WatchBooking",
        "WatchPatient",
        "GetQuota",
        "ResetQuota",
        "Health/Check",
        *(f"FrontDeskService/{m}" for m in ("CheckIn", "GetQueue", "WatchQueue", "CallNext")),
        *(f"FrontDeskService/{m}" for m in ("CompleteVisit", "MarkNoShow")),
    ):
        assert rpc in text, rpc


async def test_readme_grpcurl_commands_work_as_printed(client, system):
    booking = await client.create(patient("p-123"), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    # The front desk's commands need today's bookings: one checks in (README), one is a no-show.
    doctor = await client.doctor()
    today = [
        (await client.settled((await client.create(patient(), ["gen-consult"], doctor_id=doctor.id)).id))
        for _ in range(2)
    ]
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    await desk.CheckIn(frontdesk_pb2.CheckInRequest(booking_id=today[1].id), metadata=client.auth())
    places = {"<doctor_id>": doctor.id, "<booking_id>": today[0].id, "<other_booking_id>": today[1].id}
    token = Client.auth()[0][1].removeprefix("Bearer ")
    env = {**os.environ, "CLINIC_TOKEN": token}
    for command in readme_commands():
        command = command.replace("127.0.0.1:50051", system.gateway_addr).replace("<id>", booking.id)
        for placeholder, value in places.items():
            command = command.replace(placeholder, value)
        endless = "WatchPatient" in command or "WatchQueue" in command
        command = command.replace("grpcurl ", f"{GRPCURL} " + ("-max-time 1 " if endless else ""), 1)
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30
        )
        if endless:
            assert "DeadlineExceeded" in done.stderr, (command, done.stderr)
        else:
            assert done.returncode == 0, (command, done.stdout, done.stderr)


async def test_readme_buf_curl_commands_work_as_printed(client, system):
    token = Client.auth()[0][1].removeprefix("Bearer ")
    env = {**os.environ, "CLINIC_TOKEN": token}
    commands = readme_commands("buf curl")
    assert len(commands) == 2
    for command in commands:
        command = command.replace("127.0.0.1:50051", system.gateway_addr).replace(
            "buf curl", f"{BUF} curl", 1
        )
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stdout.strip().startswith("{")
