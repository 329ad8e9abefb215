"""The `clinic` command against the real system, run as a user would run it."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
import urllib.request

import nats

from clinic_cli.scenarios import SCENARIOS
from clinic_common import nats_io, subjects
from tests.harness import Client, Servers, System, future_date, patient, uid, wait_for


async def clinic(
    system, *args: str, addr: str | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **(extra_env or {}),
        "CLINIC_GATEWAY_ADDR": addr or system.gateway_addr,
        "CLINIC_TOKEN": Client.auth()[0][1].removeprefix("Bearer "),
        "COLUMNS": "30",  # a narrow terminal's setting: output to a pipe must still not wrap
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


def _creates_seen_by(system) -> float:
    """CreateBooking calls the system's gateway has answered, from its /metrics."""
    addr = f"http://127.0.0.1:{system.metrics_ports['gateway']}/metrics"
    with urllib.request.urlopen(addr, timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("clinic_grpc_requests_total{") and "BookingService/CreateBooking" in line
    )


def _passed(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [v.split()[0] for v in verdicts] == ["PASS"] * len(SCENARIOS), done.stdout
    assert not re.search(r"\b(BOOKING_STATUS|DISCOUNT_OUTCOME)\w* / \d", done.stdout)


async def test_scenarios_run_on_a_throwaway_system_twice_and_leave_the_running_one_alone(system, client):
    quota_before = await client.quota()
    creates_before = await asyncio.to_thread(_creates_seen_by, system)
    runs = [await clinic(system, "scenarios") for _ in range(2)]
    assert (await client.quota()).used == quota_before.used
    assert await asyncio.to_thread(_creates_seen_by, system) == creates_before
    for done in runs:
        _passed(done)
        assert "throwaway system stopped and removed" in done.stdout


async def test_scenarios_live_without_a_terminal_or_yes_refuses_in_one_line(system, client):
    creates_before = await asyncio.to_thread(_creates_seen_by, system)
    done = await clinic(system, "scenarios", "--live")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"clinic: scenarios --live changes the system at {system.gateway_addr}"), line
    assert "--yes" in line
    assert await asyncio.to_thread(_creates_seen_by, system) == creates_before


async def test_scenarios_live_twice_leave_the_quota_as_they_found_it(tmp_path):
    own = Servers(tmp_path).start()
    live = System(own, env={"DAILY_DISCOUNT_QUOTA": "12"})
    try:
        live.start()
        probe = Client(live.gateway_addr)
        try:
            await probe.create(patient(), ["gen-consult"], appointment_date=future_date())  # a real patient
            before = await probe.quota()
            for _ in range(2):
                done = await clinic(live, "scenarios", "--live", "--yes")
                _passed(done)
                assert "make about" in done.stdout and "then cancel every booking it made" in done.stdout
            assert (await probe.quota()).used == before.used
        finally:
            await probe.close()
        verified = await clinic(live, "quota", "verify")
        assert verified.returncode == 0 and ": consistent" in verified.stdout, verified.stdout
    finally:
        live.stop()
        own.stop()


async def test_quota_show_and_verify(system):
    shown = await clinic(system, "quota")
    assert shown.returncode == 0 and "of 20" in shown.stdout
    # verify --repair puts the counter back from the bookings if anything moved it (nothing should
    # have: the scenarios run elsewhere), after which it is consistent.
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


async def test_dlq_lists_dead_letters_and_replays_one(system, servers):
    """A poison message lands in DEAD_LETTERS; `clinic dlq` shows it; `replay` publishes its
    payload to its subject again (still poison here, so it comes back as a new letter) and removes
    the old letter."""
    ops = {"NATS_URL": servers.nats_url}
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    subject = subjects.saga_subject(subjects.DISCOUNT_REQUESTED, uid("dlqcli"))

    async def letters_for_subject() -> list[int]:
        return [seq for seq, letter in await nats_io.dead_letters(js) if letter.subject == subject]

    try:
        await js.publish(subject, b"\x00not a protobuf", headers={"Nats-Msg-Id": uid("p")})
        [first] = await wait_for(letters_for_subject, what="the poison message dead-lettered")

        listed = await clinic(system, "dlq", "list", extra_env=ops)
        assert listed.returncode == 0, listed.stderr
        assert subject in listed.stdout and "poison" in listed.stdout and str(first) in listed.stdout

        replayed = await clinic(system, "dlq", "replay", str(first), extra_env=ops)
        assert replayed.returncode == 0, replayed.stderr
        assert f"replayed dead letter {first} to {subject}" in replayed.stdout
        again = await wait_for(
            lambda: _first_other(letters_for_subject, first), what="the replayed message back in DEAD_LETTERS"
        )
        assert again != first
        assert first not in await letters_for_subject()  # the replayed letter was removed

        missing = await clinic(system, "dlq", "replay", str(first), extra_env=ops)
        assert missing.returncode == 1 and f"no dead letter {first}" in missing.stderr
    finally:
        await nc.close()


async def _first_other(letters, old: int) -> int | None:
    return next((seq for seq in await letters() if seq != old), None)


async def test_unavailable_names_the_service_that_is_down(servers):
    """A gateway whose booking_svc is down answers UNAVAILABLE naming it; the CLI prints that, and
    says the gateway is unreachable only when the connection to the gateway itself fails."""
    lonely = System(servers, services=("booking_svc", "gateway")).start()
    try:
        lonely.kill("booking_svc")  # the edge answers health from booking_svc, so it starts with one
        done = await clinic(lonely, "services")
    finally:
        lonely.stop()
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("clinic: UNAVAILABLE: booking_svc unavailable"), line
    assert "cannot reach the gateway" not in line


async def test_bad_input_shows_every_field_with_its_description(system):
    done = await clinic(
        system, "book", "--patient", uid("cli"), "--gender", "male", "--dob", "1990-13-01", "mammography"
    )
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("clinic: INVALID_ARGUMENT: "), lines
    assert "  service_ids[0]: not offered to the patient's gender" in lines
    assert any(line.startswith("  patient.date_of_birth: ") for line in lines), lines


async def _booked(system, client) -> tuple[str, str]:
    pid = uid("cli")
    booking = await client.create(patient(pid), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    return pid, booking.id


async def test_listings_print_full_ids_unwrapped_and_json(system, client):
    pid, booking_id = await _booked(system, client)
    listed = await clinic(system, "bookings", "--patient", pid)
    assert listed.returncode == 0, listed.stderr
    assert booking_id in listed.stdout and "…" not in listed.stdout

    got = await clinic(system, "get", booking_id)
    assert got.returncode == 0, got.stderr
    [created] = [line for line in got.stdout.splitlines() if "BOOKING_CREATED" in line]
    assert "Booking created: ₹500.00" in created  # the saga line is whole, not wrapped at 30 columns

    as_json = json.loads((await clinic(system, "bookings", "--patient", pid, "--json")).stdout)
    assert [(b["id"], b["status"]) for b in as_json] == [(booking_id, "BOOKING_STATUS_CONFIRMED")]
    one = json.loads((await clinic(system, "get", booking_id, "--json")).stdout)
    assert one["id"] == booking_id and one["patient"]["id"] == pid
    services = json.loads((await clinic(system, "services", "--json")).stdout)
    assert "gen-consult" in {s["id"] for s in services}
    quota = json.loads((await clinic(system, "quota", "--json")).stdout)
    assert set(quota) >= {"date", "limit"}


def test_a_narrow_terminal_still_shows_whole_ids(system):
    """On a real terminal (a pty) 60 columns wide, the id column is never cut with an ellipsis."""
    pid = uid("tty")
    booking_id = asyncio.run(_book_one(system.gateway_addr, pid))
    env = {
        **os.environ,
        "CLINIC_GATEWAY_ADDR": system.gateway_addr,
        "CLINIC_TOKEN": Client.auth()[0][1].removeprefix("Bearer "),
        "COLUMNS": "60",
        "TERM": "xterm",
    }
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clinic_cli", "bookings", "--patient", pid],
        env=env,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(60) == 0
    shown = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode(errors="replace"))
    assert booking_id in shown, shown


async def _book_one(addr: str, pid: str) -> str:
    client = Client(addr)
    try:
        booking = await client.create(patient(pid), ["gen-consult"], appointment_date=future_date())
        await client.settled(booking.id)
        return booking.id
    finally:
        await client.close()
