"""Messages that reach the patient: e-mail over a real SMTP server (aiosmtpd), SMS and WhatsApp
through a real local webhook server that fails some calls, reminders fired by JetStream message
schedules, consent, masking, and the dead letter after the last attempt.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import grpc
import nats
import pytest

from clinic.v1 import booking_pb2, doctor_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic.v1 import notification_pb2 as n
from clinic_common import nats_io, subjects
from tests.channels import (
    ALWAYS_FAILS,
    CLINIC_TZ,
    FAILS_FIRST,
    Mailbox,
    Provider,
    channel_env,
    register,
    serve_mailbox,
    serve_provider,
)
from tests.harness import Client, Servers, System, future_date, patient, uid, wait_for


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    controller = serve_mailbox(box)
    yield box, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    server = serve_provider(p)
    yield p, server.server_address[1]
    server.shutdown()


def reminder_plan() -> tuple[datetime, str]:
    """An appointment time a few minutes ahead, and a reminder offset that fires ~40 s from now
    (the system starts right after this is computed; the reminder test runs first)."""
    now = datetime.now(CLINIC_TZ)
    start = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
    offset_s = int((start - now).total_seconds()) - 40
    return start, f"{offset_s}s"


PLAN: list[tuple[datetime, str]] = []  # set when the system starts


@pytest.fixture(scope="module")
def notify_servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("notify")).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def notify_system(notify_servers, mailbox, provider):
    _, smtp_port = mailbox
    _, hook_port = provider
    PLAN.append(reminder_plan())
    system = System(
        notify_servers,
        env={
            **channel_env(smtp_port, hook_port),
            "CLINIC_NOTIFY_DEV": "1",
            "CLINIC_TIMEZONE": CLINIC_TZ.key,
            "CLINIC_NOTIFY_BACKOFF": "1s,1s,1s,1s,1s",
            "CLINIC_REMINDERS": f"30d,{PLAN[0][1]}",  # 30d: already past for these bookings, never sent
        },
    ).start()
    yield system
    system.stop()


@pytest.fixture
async def api(notify_system):
    client = Client(notify_system.gateway_addr)
    yield client
    await client.close()


async def sent(
    api: Client, booking_id: str, kinds: set[tuple[str, str]], timeout_s: float = 30
) -> list[n.Delivery]:
    async def check():
        found = await api.deliveries(booking_id)
        done = {(d.kind, d.channel) for d in found if d.status == n.DELIVERY_STATUS_SENT}
        return found if kinds <= done else None

    return await wait_for(check, timeout_s, f"deliveries {sorted(kinds)} of {booking_id}")


async def test_reminders_arrive_at_their_time_and_never_for_a_cancelled_or_moved_booking(
    api: Client, notify_servers
):
    """First in this file: its reminder is set to fire about 40 s after the system started."""
    start, offset = PLAN[0]
    kind = f"reminder-{offset}"
    doctor = await api.doctor(day_start="00:00", day_end="23:45", slot_minutes=15, daily_capacity=40)
    kept = await api.create(
        patient(),
        ["gen-consult"],
        appointment_date=start.date().isoformat(),
        doctor_id=doctor.id,
        start_time=start.strftime("%H:%M"),
    )
    dropped = await api.create(
        patient(),
        ["gen-consult"],
        appointment_date=start.date().isoformat(),
        doctor_id=doctor.id,
        start_time=(start + timedelta(minutes=15)).strftime("%H:%M"),
    )
    moved = await api.create(
        patient(),
        ["gen-consult"],
        appointment_date=start.date().isoformat(),
        doctor_id=doctor.id,
        start_time=(start + timedelta(minutes=30)).strftime("%H:%M"),
    )
    for b in (kept, dropped, moved):
        assert (await api.settled(b.id)).status == c.BOOKING_STATUS_CONFIRMED
    await api.cancel(dropped.id, "changed plans")
    await sent(api, dropped.id, {("cancelled", "app")})
    later = (start + timedelta(days=1)).date().isoformat()
    move = booking_pb2.RescheduleBookingRequest(
        booking_id=moved.id, appointment_date=later, request_id=uid("mv")
    )
    await api.bookings.RescheduleBooking(move, metadata=api.auth(), timeout=10)
    await sent(api, moved.id, {("rescheduled", "app")})

    fired_at = start - timedelta(seconds=int(offset[:-1]))
    found = await sent(api, kept.id, {(kind, "app"), (kind, "console")}, timeout_s=120)
    assert datetime.now(CLINIC_TZ) >= fired_at - timedelta(seconds=1)  # not before its time
    assert not any(d.kind == "reminder-30d" for d in found)  # its time had passed: never scheduled
    assert sum(1 for d in found if d.kind == kind) == 2
    # The cancelled booking's schedule was purged: nothing of it is left to fire, nothing fired.
    assert await _stored(notify_servers, f"reminders.*.*.{dropped.id}") == []
    assert [s for s in await _stored(notify_servers, f"reminders.*.*.{kept.id}")] == [
        subjects.reminder_due_subject(kind, kept.id)
    ]
    assert not any(d.kind.startswith("reminder-") for d in await api.deliveries(dropped.id))
    # The moved booking's schedule was replaced: one, for the new day, and nothing fired for the old time.
    assert not any(d.kind.startswith("reminder-") for d in await api.deliveries(moved.id))
    [schedule] = await _messages(notify_servers, f"reminders.*.*.{moved.id}")
    assert schedule.subject == subjects.reminder_schedule_subject(kind, moved.id)
    new_at = start + timedelta(days=1, minutes=30) - timedelta(seconds=int(offset[:-1]))
    assert schedule.headers["Nats-Schedule"] == f"@at {new_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


async def test_a_confirmation_reaches_each_allowed_channel_once_and_no_other(api: Client, mailbox, provider):
    box, _ = mailbox
    hooks, _ = provider
    who = await register(api, "Kavya Menon", email=True, whatsapp=True)  # sms not allowed
    booking = await api.create(who, ["gen-consult"], appointment_date=future_date())
    await api.settled(booking.id)
    found = await sent(
        api, booking.id, {("confirmed", "app"), ("confirmed", "console"), ("confirmed", "email")}
    )
    found = await sent(api, booking.id, {("confirmed", "whatsapp")})  # after two failed calls
    assert {(d.kind, d.channel) for d in found} == {
        ("confirmed", "app"),
        ("confirmed", "console"),
        ("confirmed", "email"),
        ("confirmed", "whatsapp"),
    }
    by_channel = {d.channel: d for d in found}
    assert by_channel["whatsapp"].attempts == FAILS_FIRST + 1
    assert by_channel["email"].to == who.email[0] + "***@example.com"
    assert by_channel["whatsapp"].to == who.phone[:3] + "*" * (len(who.phone) - 7) + who.phone[-4:]

    mails = [m for m in box.messages if m["To"] == who.email]
    assert len(mails) == 1
    body = mails[0].get_payload()
    assert mails[0]["Subject"].startswith("Booking confirmed") and "Kavya" in body
    assert "Menon" not in body + mails[0]["Subject"] and who.phone not in body
    key = f"{booking.id}:confirmed:4:whatsapp"
    assert hooks.accepted_calls[key] == 1 and hooks.calls[key] == FAILS_FIRST + 1
    assert hooks.accepted[key]["to"] == who.phone and "Kavya" in hooks.accepted[key]["text"]
    assert not any(k.startswith(booking.id) and k.endswith(":sms") for k in hooks.calls)  # no consent
    assert hooks.bad_signatures == 0


async def test_the_operator_sees_deliveries_masked_and_dev_mode_prints_the_message(
    api: Client, notify_system: System
):
    who = await register(api, "Meera Pillai", email=True)
    booking = await api.create(who, ["gen-consult"], appointment_date=future_date())
    await api.settled(booking.id)
    await sent(api, booking.id, {("confirmed", "email"), ("confirmed", "console")})
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "clinic_cli", "deliveries", booking.id],
        env={
            **os.environ,
            "CLINIC_GATEWAY_ADDR": notify_system.gateway_addr,
            "CLINIC_TOKEN": Client.auth()[0][1].removeprefix("Bearer "),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "confirmed" in done.stdout and "email" in done.stdout and "SENT" in done.stdout
    masked = who.email[0] + "***@example.com"
    assert masked in done.stdout and who.email not in done.stdout and who.phone not in done.stdout
    # The console channel printed the text (first name only) on notification_svc's output.
    log = notify_system.log_tail("notification_svc", 200_000)
    assert f"--- notification (confirmed, booking {booking.id}) ---" in log
    printed = log.split(f"booking {booking.id}) ---", 1)[1].split("\n---", 1)[0]
    assert "Meera" in printed and "Pillai" not in printed
    # No address in the service's logs or its metrics.
    assert who.email not in log and who.phone not in log


async def test_a_patient_lists_only_their_own_deliveries(api: Client):
    who = await register(api, "Asha Rao", email=True)
    booking = await api.create(who, ["gen-consult"], appointment_date=future_date())
    await api.settled(booking.id)
    await sent(api, booking.id, {("confirmed", "email")})
    own = await api.deliveries(booking.id, Client.auth(who.id, "patient"))
    assert {d.channel for d in own} >= {"app", "email"}
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await api.deliveries(booking.id, Client.auth("someone-else", "patient"))
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await api.deliveries("no.such.id")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_provider_that_never_accepts_ends_dead_lettered(api: Client, provider, notify_servers):
    hooks, _ = provider
    who = await register(api, "Ravi Iyer", phone=ALWAYS_FAILS, sms=True)
    booking = await api.create(who, ["gen-consult"], appointment_date=future_date())
    await api.settled(booking.id)

    async def dead():
        found = await api.deliveries(booking.id)
        return [d for d in found if d.channel == "sms" and d.status == n.DELIVERY_STATUS_DEAD]

    (delivery,) = await wait_for(dead, 40, "the sms delivery to be dead")
    assert delivery.attempts == 6
    assert hooks.calls[f"{booking.id}:confirmed:4:sms"] == 6
    nc = await nats.connect(notify_servers.nats_url)
    try:
        js = nc.jetstream()

        async def lettered():
            letters = await nats_io.dead_letters(js)
            return [
                letter for _, letter in letters if letter.subject == subjects.send_subject("sms", booking.id)
            ]

        (letter,) = await wait_for(lettered, 15, "the dead letter")
        assert letter.consumer == subjects.SEND_CONSUMER
        assert ALWAYS_FAILS.encode() not in letter.payload  # ids only: the address is read when sent
    finally:
        await nc.close()


async def _stored(servers: Servers, subject: str) -> list[str]:
    return [msg.subject for msg in await _messages(servers, subject)]


async def _messages(servers: Servers, subject: str) -> list:
    nc = await nats.connect(servers.nats_url)
    try:
        js = nc.jetstream()
        found, seq = [], 1
        while True:
            try:
                msg = await js.get_msg(subjects.REMINDERS_STREAM, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return found
            found.append(msg)
            seq = msg.seq + 1
    finally:
        await nc.close()


async def test_a_reminder_fired_for_a_time_that_no_longer_holds_is_dropped(api: Client, notify_servers):
    """A schedule that raced its purge fires anyway: the booking's history says it is stale."""
    booking = await api.create(patient(), ["gen-consult"], appointment_date=future_date())
    done = await api.settled(booking.id)
    confirmed = next(e for e in done.history if e.type == c.EVENT_TYPE_BOOKING_CONFIRMED)
    await api.cancel(booking.id)
    await sent(api, booking.id, {("cancelled", "app")})
    fresh = await api.create(patient(), ["gen-consult"], appointment_date=future_date())
    fresh_done = await api.settled(fresh.id)
    fresh_confirmed = next(e for e in fresh_done.history if e.type == c.EVENT_TYPE_BOOKING_CONFIRMED)
    nc = await nats.connect(notify_servers.nats_url)
    try:
        js = nc.jetstream()
        for b, event in ((booking, confirmed), (fresh, fresh_confirmed)):
            due = saga_pb2.ReminderDue(booking_id=b.id, kind="reminder-9m", event=event)
            await js.publish(subjects.reminder_due_subject("reminder-9m", b.id), due.SerializeToString())
        await sent(api, fresh.id, {("reminder-9m", "app")})  # the control: a current one goes out

        async def drained():
            info = await js.consumer_info(subjects.REMINDERS_STREAM, subjects.REMINDER_CONSUMER)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(drained, 15, "the reminders consumer to drain")
    finally:
        await nc.close()
    assert not any(d.kind == "reminder-9m" for d in await api.deliveries(booking.id))


async def test_a_killed_notifier_still_delivers_each_message_once(api: Client, provider, notify_system):
    """notification_svc is killed (SIGKILL) while deliveries are queued and failing, then started
    again: every message reaches the provider, and the provider accepts each key once."""
    hooks, _ = provider
    people = [await register(api, f"Lata {i} Nair", whatsapp=True, sms=True) for i in range(4)]
    bookings = [await api.create(p, ["gen-consult"], appointment_date=future_date()) for p in people]
    for b in bookings:
        await api.settled(b.id, notified=False)
    notify_system.kill("notification_svc")
    await asyncio.to_thread(notify_system.start, ("notification_svc",))
    for b in bookings:
        await sent(api, b.id, {("confirmed", "whatsapp"), ("confirmed", "sms"), ("confirmed", "app")}, 60)
    keys = [f"{b.id}:confirmed:4:{channel}" for b in bookings for channel in ("sms", "whatsapp")]
    assert [hooks.accepted_calls[key] for key in keys] == [1] * len(keys)
    for b in bookings:  # the in-app record once too, whatever was redelivered
        assert [d.channel for d in await api.deliveries(b.id)].count("app") == 1


async def test_a_token_is_reminded_by_the_hours_of_its_own_date(api: Client, notify_servers):
    """A token has no time of its own: its visit starts when the doctor's day starts on that date,
    which that date's availability (or the week's plan) may move from the doctor's usual 09:00."""
    _, offset = PLAN[0]
    kind = f"reminder-{offset}"
    doctor = await api.doctor(daily_capacity=5)  # usually 09:00-17:00
    day = future_date()
    later = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, day_start="11:30")
    await api.doctors.SetAvailability(later, metadata=api.auth(), timeout=10)
    b = await api.create(patient(), ["gen-consult"], appointment_date=day, doctor_id=doctor.id)
    assert (await api.settled(b.id)).status == c.BOOKING_STATUS_CONFIRMED

    async def scheduled():
        return await _messages(notify_servers, subjects.reminder_schedule_subject(kind, b.id)) or None

    [schedule] = await wait_for(scheduled, 20, f"the {kind} reminder of {b.id} scheduled")
    start = datetime.combine(datetime.fromisoformat(day).date(), datetime.min.time(), CLINIC_TZ)
    at = start + timedelta(hours=11, minutes=30) - timedelta(seconds=int(offset[:-1]))
    assert schedule.headers["Nats-Schedule"] == f"@at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
