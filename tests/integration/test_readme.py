"""The README's grpcurl commands, run as printed (address, token and booking id filled in)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, Client, future_date, patient
from tests.integration.test_waitlist import full_day, offered, queue

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
        "AcceptOffer",
        "WatchBooking",
        "WatchPatient",
        "GetQuota",
        "ResetQuota",
        "Health/Check",
    ):
        assert rpc in text, rpc


async def test_readme_grpcurl_commands_work_as_printed(client, system):
    booking = await client.create(patient("p-123"), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    offered = await _an_offered_booking(client)
    token = Client.auth()[0][1].removeprefix("Bearer ")
    env = {**os.environ, "CLINIC_TOKEN": token}
    for command in readme_commands():
        command = command.replace("127.0.0.1:50051", system.gateway_addr).replace("<id>", booking.id)
        command = command.replace("<offered-id>", offered)
        endless = "WatchPatient" in command
        command = command.replace("grpcurl ", f"{GRPCURL} " + ("-max-time 1 " if endless else ""), 1)
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30
        )
        if endless:
            assert "DeadlineExceeded" in done.stderr, (command, done.stderr)
        else:
            assert done.returncode == 0, (command, done.stdout, done.stderr)


async def _an_offered_booking(client: Client) -> str:
    """A WAITLISTED booking with a place offered to it (for AcceptOffer)."""
    doctor_id, day, (taken,) = await full_day(client)
    (waiting,) = await queue(client, day, doctor_id, 1)
    await client.cancel(taken.id)
    return (await offered(client, waiting.id)).id


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
