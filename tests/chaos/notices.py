"""Notifications and reminders for the fault run (issue 20): e-mail through a real SMTP server and
SMS/WhatsApp through a real webhook provider that fails the first call of every key, reminders
fired by JetStream message schedules, while notification_svc is SIGKILLed and NATS restarted.

Patients who allow every channel book tokens for today with a doctor whose day starts a few
minutes ahead, so both reminder offsets fall inside the run. A share is cancelled and a share moved
to a second doctor (whose day starts two minutes later) before the first reminder is due.

Checked per idempotency key (`<booking>:<kind>:<event sequence>:<channel>`) once everything drained:
every due message (each told event of the booking's history, and each reminder of the appointment
as it stands) reached the SMTP server and was accepted by the webhook provider (its failed calls are
retries, not deliveries); none for a cancelled booking or for the old time of a moved one; nothing of
these bookings dead-lettered (chaos.py checks the DLQ holds only the poison message).

Exactly once per key, with the one gap docs/notifications.md names: a notifier killed after the
receiver accepted a message and before its "sent" mark is written sends it again on redelivery, with
the same Message-ID and Idempotency-Key, which the receiving side drops (a mail client shows one
Message-ID once; the webhook adapter answers a seen key without sending). So a repeated copy counts
as `resubmitted` only when a notification_svc SIGKILL came within RESUBMIT_WINDOW_S after the copy
before it, and as `doubled` otherwise, as does a second Message-ID for one key.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import nats

from clinic.v1 import common_pb2 as c
from clinic.v1 import notification_pb2 as n
from clinic_common import nats_io, subjects
from clinic_common.timeutil import parse_duration
from notification_svc import domain
from notification_svc.domain import KINDS as TOLD_KINDS
from tests.channels import (
    Mailbox,
    Provider,
    channel_env,
    register,
    serve_mailbox,
    serve_provider,
)
from tests.harness import FINAL, IST, Client, Servers, uid

from .reschedules import Moves

OFFSETS = ("3m", "1m")  # CLINIC_REMINDERS: both fire inside the run
MOVE_LATER = timedelta(minutes=2)  # the second doctor's day starts this much after the first's
EXTERNAL = (domain.EMAIL, domain.SMS, domain.WHATSAPP)
# Waits between a failed delivery's attempts: more than the integration tests allow, since every
# kill of notification_svc costs a job one more delivery (its redelivery after the ack wait).
BACKOFF = "1s,1s,2s,2s,3s,3s,5s,5s"
# A repeat is the crash gap only if notification_svc was killed this soon after the copy before it
# (acceptance to "sent" mark is one Redis write: milliseconds, longer on a loaded 2-core machine).
RESUBMIT_WINDOW_S = 1.0


class Notices:
    def __init__(self, count: int, retrying, moves: Moves, rng: random.Random) -> None:
        self.count = count
        self._retrying = retrying
        self._moves = moves
        self._rng = rng
        self.box = Mailbox()
        self.provider = Provider(fails_first=1)
        self._smtp = None
        self._http = None
        self.ids: list[str] = []
        self.starts: dict[str, datetime] = {}  # doctor id -> when its (token) appointments begin
        self.first_due: datetime | None = None  # the earliest reminder of the first doctor's day
        self.late: list[str] = []  # cancellations or moves that ended after the first reminder was due
        self.figures: Counter = Counter()

    # -- setup ----------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Start the receivers; notification_svc's settings for them and the reminders."""
        self._smtp = serve_mailbox(self.box)
        self._http = serve_provider(self.provider)
        return {
            **channel_env(self._smtp.port, self._http.server_address[1]),
            "CLINIC_REMINDERS": ",".join(OFFSETS),
            "CLINIC_NOTIFY_BACKOFF": BACKOFF,
        }

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
        if self._http is not None:
            self._http.shutdown()

    async def setup(self, client: Client) -> None:
        """Patients who allow every channel, and two doctors whose days start minutes ahead: the
        bookings, cancellations and moves of `drive` fit before the first reminder is due."""
        window_s = 40 + self.count * 0.6
        now = datetime.now(IST)
        lead = parse_duration(OFFSETS[0]) + timedelta(seconds=window_s)
        start = _next_minute(now + lead)
        if (start + MOVE_LATER + timedelta(minutes=2)).date() != now.date():
            # the days would cross midnight: start after it (only within minutes of it)
            await asyncio.sleep((_next_minute(now.replace(hour=23, minute=59)) - now).total_seconds() + 1)
            now = datetime.now(IST)
            start = _next_minute(now + lead)
        self.first_due = start - parse_duration(OFFSETS[0])
        for at in (start, start + MOVE_LATER):
            doctor = await client.doctor(
                day_start=at.strftime("%H:%M"), day_end="23:59", daily_capacity=self.count + 5
            )
            self.starts[doctor.id] = at
        self.patients = [
            await register(client, f"Nisha {i} Kurup", email=True, sms=True, whatsapp=True)
            for i in range(self.count)
        ]

    # -- while the faults run ---------------------------------------------------------------------

    async def drive(self, client: Client) -> None:
        """Book, then cancel a fifth and move a fifth (to the second doctor), all before the first
        reminder is due; then stay until the last reminder is due, so the faults run through them."""
        first, second = list(self.starts)
        today = self.starts[first].date().isoformat()
        spacing = 20.0 / self.count
        tasks = []
        for i, who in enumerate(self.patients):
            tasks.append(asyncio.create_task(self._one(client, i, who, first, second, today)))
            await asyncio.sleep(spacing)
        await asyncio.gather(*tasks)
        last_due = self.starts[second] - parse_duration(OFFSETS[-1])
        await asyncio.sleep(max(0.0, (last_due - datetime.now(IST)).total_seconds() + 5))

    async def _one(self, client: Client, i: int, who: c.Patient, first: str, second: str, day: str) -> None:
        req_id = uid("notice")

        def create():
            return client.create(
                who, ["gen-consult"], appointment_date=day, doctor_id=first, request_id=req_id
            )

        booking = await self._retrying(create)
        booking_id = booking.id
        self.ids.append(booking_id)
        deadline = time.monotonic() + 90
        while booking.status not in FINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            booking = await self._retrying(lambda: client.get(booking_id))
        if booking.status != c.BOOKING_STATUS_CONFIRMED:
            return
        fate = i % 5
        if fate == 1:
            await self._retrying(lambda: client.cancel(booking.id, "chaos notices"))
            self.figures["cancelled"] += 1
        elif fate == 2:
            if await self._moves.move(client, booking.id, doctor_id=second, appointment_date=day):
                self.figures["moves asked"] += 1
        else:
            return
        if datetime.now(IST) >= self.first_due:
            self.late.append(booking.id)

    # -- verification -----------------------------------------------------------------------------

    async def verify(
        self, client: Client, servers: Servers, faults=(), deadline_s: float = 150.0
    ) -> tuple[list[str], int, int]:
        """(problems, lost, doubled): waits, with a deadline, until every due message arrived and
        notification_svc's consumers drained, then counts per idempotency key."""
        deadline = time.monotonic() + deadline_s
        while True:
            final = {bid: await self._retrying(lambda bid=bid: client.get(bid)) for bid in self.ids}
            due, allowed = self._due(final.values())
            mails, accepted = self.box.by_key(), self.provider.accepted_calls
            arrived = all((mails if key.endswith(f":{domain.EMAIL}") else accepted)[key] >= 1 for key in due)
            if (arrived and await _drained(servers)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        problems: list[str] = []
        lost = doubled = 0
        got = Counter(mails)
        got.update({k: v for k, v in accepted.items()})
        message_ids = self.box.message_ids()
        mine = set(self.ids)
        resubmitted = 0
        for key, times in sorted(got.items()):
            if key.partition(":")[0] not in mine:
                continue
            if key in due:
                if len(message_ids.get(key, ())) > 1:
                    doubled += 1
                    problems.append(f"notices: {key} mailed as {len(message_ids[key])} different messages")
                elif times > 1 and self._crash_gap(key, faults):
                    resubmitted += times - 1
                elif times > 1:
                    doubled += 1
                    problems.append(f"notices: {key} delivered {times} times{self._when(key, faults)}")
            elif key not in allowed:
                doubled += 1
                problems.append(f"notices: {key} delivered {times} times, never due (cancelled or moved)")
        for key in sorted(due):
            if got[key] == 0:
                lost += 1
                problems.append(f"notices: {key} never delivered")
        for bid in self.ids:
            found = await self._retrying(lambda bid=bid: client.deliveries(bid))
            dead = [(d.kind, d.channel) for d in found if d.status == n.DELIVERY_STATUS_DEAD]
            if dead:
                problems.append(f"notices: booking {bid} has dead deliveries {dead}")
        if self.late:
            problems.append(
                f"notices: {len(self.late)} cancellations/moves ended after the first reminder was due"
            )
        if self.provider.bad_signatures:
            problems.append(f"notices: {self.provider.bad_signatures} webhook calls badly signed")
        statuses = Counter(b.status for b in final.values())
        moved = sum(
            1 for b in final.values() if any(e.type == c.EVENT_TYPE_BOOKING_RESCHEDULED for e in b.history)
        )
        reminders = sum(1 for key in due if ":reminder-" in key)
        self.figures.update(
            {
                "bookings": len(self.ids),
                "confirmed": statuses[c.BOOKING_STATUS_CONFIRMED],
                "moved": moved,
                "due": len(due),
                "due reminders": reminders,
                "mails": sum(mails[k] for k in mails if k and k.partition(":")[0] in mine),
                "webhook accepted": sum(accepted[k] for k in accepted if k.partition(":")[0] in mine),
                "webhook failed calls": sum(
                    calls - accepted[k]
                    for k, calls in self.provider.calls.items()
                    if k.partition(":")[0] in mine
                ),
                "webhook calls cut short by a kill": self.provider.cut_short,
                "lost": lost,
                "doubled": doubled,
                "resubmitted after a kill in the crash gap (same Message-ID / key)": resubmitted,
            }
        )
        return problems, lost, doubled

    def _crash_gap(self, key: str, faults) -> bool:
        """Every copy but the last was followed by a notification_svc kill within RESUBMIT_WINDOW_S."""
        times = (self.box.arrived if key.endswith(f":{domain.EMAIL}") else self.provider.accepted_at).get(key)
        kills = [t for t, what in faults if what.startswith("notification_svc")]
        return bool(times) and all(
            any(-0.05 <= t - copy <= RESUBMIT_WINDOW_S for t in kills) for copy in times[:-1]
        )

    def _when(self, key: str, faults) -> str:
        """When the copies of a doubled key came, and the notifier kill nearest after the first."""
        times = (self.box.arrived if key.endswith(f":{domain.EMAIL}") else self.provider.accepted_at).get(key)
        if not times:
            return ""
        first = times[0]
        kills = [t - first for t, what in faults if what.startswith("notification_svc") and t >= first - 1]
        after = f"; notification_svc SIGKILLed {min(kills):+.3f}s after the first" if kills else ""
        return " (copies at " + ", ".join(f"{t - first:+.3f}s" for t in times) + after + ")"

    def _due(self, bookings) -> tuple[set[str], set[str]]:
        """The keys that must each be delivered once, and those that may be (a reminder whose time
        came before the cancellation or move that dropped it: none, when `late` is empty)."""
        due: set[str] = set()
        allowed: set[str] = set()
        for b in bookings:
            told = [e for e in b.history if e.type in TOLD_KINDS]
            for e in told:
                kind = TOLD_KINDS[e.type]
                due.update(domain.idempotency_key(b.id, kind, e.sequence, ch) for ch in EXTERNAL)
            for e in told:
                if e.type not in domain.SETS_APPOINTMENT:
                    continue
                start = self.starts.get(e.appointment.doctor_id)
                after = [later for later in told if later.sequence > e.sequence]
                ends = after[0].occurred_at.ToDatetime(UTC) if after else None
                for offset in OFFSETS:
                    at = start - parse_duration(offset)
                    if at <= e.occurred_at.ToDatetime(UTC):
                        continue  # already past when it was set: never scheduled
                    kind = domain.reminder_kind(offset)
                    keys = {domain.idempotency_key(b.id, kind, e.sequence, ch) for ch in EXTERNAL}
                    if ends is None:
                        due.update(keys)
                    elif at < ends + timedelta(seconds=2):
                        allowed.update(keys)
        return due, allowed


def _next_minute(t: datetime) -> datetime:
    return (t + timedelta(minutes=1)).replace(second=0, microsecond=0) if t.second or t.microsecond else t


async def _drained(servers: Servers) -> bool:
    """notification_svc has nothing left to do: its three consumers have nothing pending or unacked."""
    try:
        nc = await nats.connect(servers=servers.nats_servers, connect_timeout=2, max_reconnect_attempts=1)
    except Exception:
        return False
    try:
        js = nc.jetstream(timeout=2)
        for stream, durable in (
            (subjects.EVENTS_STREAM, subjects.NOTIFICATION_CONSUMER),
            (subjects.NOTIFY_STREAM, subjects.SEND_CONSUMER),
            (subjects.REMINDERS_STREAM, subjects.REMINDER_CONSUMER),
        ):
            info = await js.consumer_info(stream, durable)
            if info.num_pending or info.num_ack_pending or info.num_redelivered:
                return False
        return True
    except (*nats_io.TRANSIENT_NATS_ERRORS, grpc.aio.AioRpcError):
        return False
    finally:
        await nc.close()
