"""The README's grpcurl commands, run as printed (address, token and booking id filled in)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from clinic.v1 import frontdesk_pb2, frontdesk_pb2_grpc
from tests.harness import ROOT, Client, future_date, patient
from tests.integration.test_waitlist import full_day, offered, queue

VENV_BIN = Path(sys.executable).parent


def as_a_reader(token: str) -> dict[str, str]:
    """The environment of a reader's shell: .venv/bin is not on PATH until the README's line puts it there."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_BIN)
    return {**os.environ, "PATH": path, "CLINIC_TOKEN": token}


def path_line() -> str:
    """The README's line that puts .venv/bin on PATH for the session."""
    [line] = [
        line
        for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
        for line in block.splitlines()
        if line.startswith("export PATH=") and ".venv/bin" in line
    ]
    return line


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
        "RescheduleBooking",
        "UpdateBookingNote",
        "WatchBooking",
        "WatchPatient",
        "GetQuota",
        "ResetQuota",
        "GetDaySummary",
        "RecordPayment",
        "RefundPayment",
        "Health/Check",
        "RegisterPatient",
        "GetPatient",
        "FindPatients",
        "CreateDoctor",
        "ListDoctors",
        "GetDoctor",
        "SetAvailability",
        "GetDoctorDay",
        "UpdatePatient",
        "UpdateDoctor",
        "SetWeeklyPlan",
        "SetLeave",
        "FindSlots",
        *(f"FrontDeskService/{m}" for m in ("CheckIn", "GetQueue", "WatchQueue", "CallNext")),
        *(f"FrontDeskService/{m}" for m in ("CompleteVisit", "MarkNoShow")),
    ):
        assert rpc in text, rpc


async def test_readme_grpcurl_commands_work_as_printed(client, system, redis):
    booking = await client.create(patient("p-123"), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    await redis.delete("{doctors}:code:dr-rao")  # the README's doctor code, free for this run
    offered = await _an_offered_booking(client)
    # The front desk's commands need today's bookings: one checks in (README), one is a no-show.
    doctor = await client.doctor()
    today = [
        (await client.settled((await client.create(patient(), ["gen-consult"], doctor_id=doctor.id)).id))
        for _ in range(2)
    ]
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    await desk.CheckIn(frontdesk_pb2.CheckInRequest(booking_id=today[1].id), metadata=client.auth())
    paid = await client.settled(
        (await client.create(patient(), ["gen-consult"], appointment_date=future_date())).id
    )  # the money commands' booking: stays CONFIRMED
    mover = await client.doctor()
    to_move = await client.create(
        patient(), ["gen-consult"], appointment_date=future_date(), doctor_id=mover.id, start_time="10:00"
    )
    await client.settled(to_move.id)
    env = as_a_reader(Client.auth()[0][1].removeprefix("Bearer "))
    filled = {
        "<paid_id>": paid.id,
        "<id>": booking.id,
        "<date>": future_date(),
        "<doctor_id>": doctor.id,
        "<booking_id>": today[0].id,
        "<other_booking_id>": today[1].id,
        "<offered-id>": offered,
        "<move_id>": to_move.id,
    }
    for command in readme_commands():
        command = command.replace("127.0.0.1:50051", system.gateway_addr)
        for placeholder, value in filled.items():
            command = command.replace(placeholder, value)
        endless = "WatchPatient" in command or "WatchQueue" in command
        if endless:
            command = command.replace("grpcurl ", "grpcurl -max-time 1 ", 1)
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", f"{path_line()}\n{command}"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if endless:
            assert "DeadlineExceeded" in done.stderr, (command, done.stderr)
            continue
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        if "RegisterPatient" in command:  # later commands name the patient and the doctor made here
            filled["<patient_id>"] = json.loads(done.stdout)["patient"]["id"]
        elif "CreateDoctor" in command:  # the doctor made above keeps <doctor_id>: today's queue is theirs
            assert json.loads(done.stdout)["doctor"]["code"] == "DR-RAO"


async def _an_offered_booking(client: Client) -> str:
    """A WAITLISTED booking with a place offered to it (for AcceptOffer)."""
    doctor_id, day, (taken,) = await full_day(client)
    (waiting,) = await queue(client, day, doctor_id, 1)
    await client.cancel(taken.id)
    return (await offered(client, waiting.id)).id


async def test_readme_buf_curl_commands_work_as_printed(client, system):
    mover = await client.doctor()
    to_move = await client.create(
        patient(), ["gen-consult"], appointment_date=future_date(), doctor_id=mover.id, start_time="10:00"
    )
    await client.settled(to_move.id)
    env = as_a_reader(Client.auth()[0][1].removeprefix("Bearer "))
    commands = readme_commands("buf curl")
    assert len(commands) == 2
    for command in commands:
        command = command.replace("127.0.0.1:50051", system.gateway_addr)
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", f"{path_line()}\n{command}"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stdout.strip().startswith("{")


def test_readme_nats_monitoring_urls_answer_with_the_embedded_server_alone(servers):
    """Every monitoring URL the README gives works against the embedded nats-server (no nats CLI)."""
    text = (ROOT / "README.md").read_text()
    urls = sorted(set(re.findall(r"http://127\.0\.0\.1:8222/[^\s`)]*", text)))
    assert len(urls) >= 4, urls
    for url in urls:
        url = url.replace(":8222/", f":{servers.monitor_port}/")
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.status == 200, url
            body = json.loads(reply.read())
        if "/jsz" in url:
            streams = {s["name"] for a in body["account_details"] for s in a["stream_detail"]}
            assert {"BOOKING_EVENTS", "SAGA", "DEAD_LETTERS"} <= streams, url


def test_readme_says_the_nats_cli_is_the_readers_to_install():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Monitoring NATS") :]
    assert "The `nats` CLI is **not** installed by `make run` or `make test`" in section
    assert not (VENV_BIN / "nats").exists()  # so the README must not pretend otherwise
