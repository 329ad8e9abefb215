"""The `clinic` command against the real system, run as a user would run it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.harness import Client, future_date, uid


async def clinic(system, *args: str, addr: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CLINIC_GATEWAY_ADDR": addr or system.gateway_addr,
        "CLINIC_TOKEN": Client.auth()[0][1].removeprefix("Bearer "),
        "COLUMNS": "200",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "clinic_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_services_lists_the_catalog(system):
    done = await clinic(system, "services", "--gender", "male")
    assert done.returncode == 0, done.stderr
    assert "gen-consult" in done.stdout and "psa-test" in done.stdout and "mammography" not in done.stdout


async def test_book_shows_the_saga_and_the_outcome(system):
    done = await clinic(
        system,
        "book",
        "--patient",
        uid("cli"),
        "--name",
        "Ravi",
        "--gender",
        "male",
        "--dob",
        "1980-01-31",
        "--date",
        future_date(),
        "gen-consult",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BOOKING_CREATED" in done.stdout and "BOOKING_CONFIRMED" in done.stdout
    assert "CONFIRMED" in done.stdout and "₹500.00" in done.stdout


async def test_scenarios_pass_against_the_running_system(system):
    done = await clinic(system, "scenarios")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS") == 4


async def test_quota_show_and_verify(system):
    shown = await clinic(system, "quota")
    assert shown.returncode == 0 and "of 20" in shown.stdout
    # ResetQuota (the scenarios call it) sets used to 0 while bookings still hold units: verify
    # --repair puts the counter back from the bookings, after which it is consistent.
    repaired = await clinic(system, "quota", "verify", "--repair")
    assert repaired.returncode == 0, repaired.stdout
    verified = await clinic(system, "quota", "verify")
    assert verified.returncode == 0, verified.stdout
    assert ": consistent" in verified.stdout


async def test_errors_are_one_line(system):
    missing = await clinic(system, "cancel", "no-such-booking")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["clinic: NOT_FOUND: booking no-such-booking not found"]
    unreachable = await clinic(system, "services", addr="127.0.0.1:1")
    assert unreachable.returncode == 2
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the gateway at 127.0.0.1:1" in lines[0]
    assert "Traceback" not in unreachable.stderr
