"""A fault run: mixed bookings while services are SIGKILLed, NATS and Redis restarted, duplicate,
late and poison messages injected; then every guarantee is checked against what was stored.

Used by `make chaos` (thousands of bookings) and, shortened, by `make test`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c
from clinic_common import nats_io, subjects
from clinic_common.config import SERVICES
from schedule_svc.places import doctor_keys, service_key
from tests.chaos.checkins import CheckIns
from tests.harness import (
    FINAL,
    Client,
    Servers,
    System,
    app_deliveries,
    birthday_patient,
    future_date,
    patient,
    redis_client,
    told_count,
    uid,
)

from .money import MoneyTraffic
from .notices import Notices
from .reschedules import ANSWERS, Moves, holder
from .waitlist import OFFER_S, WaitlistTraffic

DOCTOR_CAPACITY = 8
STARTS = [f"{h:02d}:{m:02d}" for h in range(9, 12) for m in (0, 15, 30, 45)]  # 30-minute visits overlap

# Events a booking may rightly have several of (the money check counts payments against the ledger).
REPEATABLE_EVENTS = {
    c.EVENT_TYPE_NOTIFICATION_SENT,
    c.EVENT_TYPE_PAYMENT_RECORDED,
    c.EVENT_TYPE_PAYMENT_REFUNDED,
}
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}


@dataclass
class Report:
    bookings: int = 0
    cancellations: int = 0
    kills: Counter = field(default_factory=Counter)
    server_restarts: Counter = field(default_factory=Counter)
    duplicates_injected: int = 0
    client_retries: int = 0
    retry_reasons: Counter = field(default_factory=Counter)
    lost: int = 0
    doubled: int = 0
    places_checked: Counter = field(default_factory=Counter)  # places seen held at the end
    problems: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    load_s: float = 0.0
    settle_s: float = 0.0
    dead_letters: int = 0
    successes: list[float] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, what was hit)
    leaderless_s: dict[str, float] = field(default_factory=dict)  # stream -> longest time without a leader
    queue: str = ""  # check-ins through the faults: positions 1..n, each once
    waitlist: Counter = field(default_factory=Counter)
    money: Counter = field(default_factory=Counter)  # payments, refunds, paid bookings cancelled
    reschedules: Counter = field(default_factory=Counter)
    notices: Counter = field(default_factory=Counter)  # the notification run's figures (notices.py)

    def longest_gap_after(self) -> dict[str, float]:
        """The longest time with no booking accepted, by the fault that came just before (or at)
        its start: what each kind of failure cost clients."""
        times = sorted(self.successes)
        worst: dict[str, float] = {}
        for a, b in itertools.pairwise(times):
            hit = [what for t, what in self.faults if t <= a + 1.0]
            if hit and b - a > 0.3:
                kind = "nats-node" if self.server_restarts.get("nats-node") and hit[-1] == "nats" else hit[-1]
                kind = kind.partition("@")[0]
                worst[kind] = round(max(worst.get(kind, 0.0), b - a), 2)
        return worst

    @property
    def longest_gap_s(self) -> float:
        """Longest time with no CreateBooking succeeding: what clients saw of an outage."""
        times = sorted(self.successes)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def lines(self) -> list[str]:
        return [
            f"bookings {self.bookings}  cancellations {self.cancellations}",
            f"kills {sum(self.kills.values())} {dict(self.kills)}",
            f"server restarts {dict(self.server_restarts)}",
            f"duplicates/late messages injected {self.duplicates_injected}",
            f"client retries {self.client_retries} {dict(self.retry_reasons.most_common(4))}",
            f"outcomes {dict(self.outcomes)}",
            f"lost {self.lost}  doubled {self.doubled}  dead letters {self.dead_letters} (1 poison injected)",
            f"places checked {dict(self.places_checked)} (tokens and intervals held only by CONFIRMED, once)",
            f"waitlist {dict(self.waitlist)} (no token held twice, no offer lost, every expiry passed on)",
            f"money {dict(self.money)} (per booking: ledger = events, none lost or doubled)",
            f"reschedules {dict(self.reschedules)} (every move answered once; places held by the holder"
            " the record names: one set each, never two, never none)",
            f"load {self.load_s:.1f}s  time to settle {self.settle_s:.1f}s",
            *(
                [
                    f"notices {dict(self.notices)} (per idempotency key: each due mail and webhook"
                    " accepted once, none for a cancelled booking or a moved one's old time)"
                ]
                if self.notices
                else []
            ),
            *([self.queue] if self.queue else []),
            *([f"longest time a stream had no leader {self.leaderless_s}"] if self.leaderless_s else []),
            f"longest time with no booking accepted {self.longest_gap_s:.2f}s"
            f" (by the fault before it: {self.longest_gap_after()})",
        ]


async def retrying(call, report: Report, deadline_s: float = 90.0):
    """Retry a call whose effect is idempotent (request ids make CreateBooking so)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            report.client_retries += 1
            report.retry_reasons[f"{err.code().name}: {(err.details() or '')[:60]}"] += 1
            await asyncio.sleep(0.2)


class Chaos:
    def __init__(
        self,
        data_dir: Path,
        *,
        bookings: int,
        rate_per_s: float,
        kill_every_s: float | None,
        seed: int = 7,
        instances: int = 1,
        nats_nodes: int = 1,
        faults: tuple[str, ...] = (*SERVICES, "nats", "redis"),
        notices: int = 0,
    ) -> None:
        self.faults = faults
        self.instances = instances
        self.nats_nodes = nats_nodes
        self.rng = random.Random(seed)
        self.report = Report()
        self.total = bookings
        self.interval_s = 1.0 / rate_per_s  # arrivals are paced so the load spans the faults
        self.kill_every_s = kill_every_s
        self.quota = max(5, bookings // 8)
        self.servers = Servers(data_dir, nats_nodes=nats_nodes)
        self.system: System | None = None
        self.created: dict[str, c.Booking] = {}
        self.told: dict[str, int] = {}  # booking id -> in-app messages notification_svc sent
        self.patients: dict[str, str] = {}  # booking id -> patient id (each patient books once)
        self.slot_days = [future_date() for _ in range(3)]
        self.doctor_ids: list[str] = []  # created at start; their days are contested for tokens and times
        self._leaders: dict[str, str | None] = {}  # stream -> its leader, as last seen by _watch_leaders
        self.moves = Moves(self._retry)
        self.waitlist = WaitlistTraffic(self.moves)
        self.money = MoneyTraffic(self.report, self._retry, random.Random(seed + 1))
        # notices > 0: e-mail and webhook channels on, reminders due inside the run (notices.py)
        self.notices = Notices(notices, self._retry, self.moves, random.Random(seed + 2)) if notices else None

    async def run(self) -> Report:
        self.servers.start()
        self.system = System(
            self.servers,
            env={
                "DAILY_DISCOUNT_QUOTA": str(self.quota),
                "BOOKING_TIMEOUT_SECONDS": "600",
                "CLINIC_ACK_WAIT_SECONDS": "3",
                "CLINIC_NATS_REPLICAS": str(min(3, self.nats_nodes)),
                "WAITLIST_OFFER_SECONDS": str(OFFER_S),
                **(self.notices.env() if self.notices else {}),
            },
            instances=self.instances,
        )
        await asyncio.to_thread(self.system.start)
        client = Client(self.system.gateway_addr)
        try:
            self.doctor_ids = [
                (await client.doctor(daily_capacity=DOCTOR_CAPACITY, slot_minutes=30)).id for _ in range(2)
            ]
            await self.waitlist.setup(client)
            if self.notices:
                await self.notices.setup(client)
            started = time.monotonic()
            done = asyncio.Event()
            accepting = asyncio.Event()
            acceptor = asyncio.create_task(self.waitlist.accept_offers(self.system.gateway_addr, accepting))
            chaos = asyncio.create_task(self._chaos(done)) if self.kill_every_s else None
            leaders = asyncio.create_task(self._watch_leaders(done)) if self.nats_nodes > 1 else None
            checkins = CheckIns(
                client, self.report, max(5, self.total // 12), self.interval_s * 12, self._retry
            )
            queue = asyncio.create_task(checkins.run())
            noticing = asyncio.create_task(self.notices.drive(client)) if self.notices else None
            loaded = asyncio.Event()
            movers = asyncio.create_task(self._reschedules(client, loaded))
            await self._load(client)
            loaded.set()
            await movers
            await queue
            await self.money.drain()  # payments and refunds go on through the faults too
            if noticing:
                await noticing  # the faults go on until the last reminder was due
            done.set()
            if chaos:
                await chaos
            if leaders:
                await leaders
            self.report.load_s = time.monotonic() - started
            await self._inject_poison()
            settle_started = time.monotonic()
            final = await self._settle(client)
            self.report.settle_s = time.monotonic() - settle_started
            await self._verify(client, final)
            self.report.problems += await self.money.verify(client)
            self.report.money = self.money.figures
            self.report.queue = await checkins.verify(self.servers)
            self.report.queue += "; " + await checkins.verify_races()
            accepting.set()  # no more accepts or cancellations: offers still out run out
            await acceptor
            self.report.problems += await self.waitlist.check(client, self.servers)
            self.report.waitlist = self.waitlist.figures
            if self.notices:
                problems, lost, doubled = await self.notices.verify(client, self.servers, self.report.faults)
                self.report.problems += problems
                self.report.lost += lost
                self.report.doubled += doubled
                self.report.notices = self.notices.figures
            self.report.reschedules = self.moves.figures
            return self.report
        finally:
            await client.close()
            self.system.stop()
            self.servers.stop()
            if self.notices:
                self.notices.stop()

    # -- load -----------------------------------------------------------------------------------

    async def _load(self, client: Client) -> None:
        start = time.monotonic()
        tasks = []
        for i in range(self.total):
            delay = start + i * self.interval_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(client, i)))
        await asyncio.gather(*tasks)

    async def _one(self, client: Client, i: int) -> None:
        kind = self.rng.random()
        doctor = start = ""
        if kind < 0.25:
            who, services, day = patient(), ["gen-consult"], future_date()
        elif kind < 0.5:
            who, services, day = (birthday_patient() if i % 2 else patient()), ["ultrasound"], future_date()
        elif kind < 0.6:
            who, services, day = patient("fail_test_user"), ["gen-consult"], future_date()
        elif kind < 0.75:
            who, services, day = patient(), ["single-slot"], self.rng.choice(self.slot_days)
        else:  # a doctor's day: tokens for all, a time interval for half of them
            who, services, day = (
                (birthday_patient() if i % 3 == 0 else patient()),
                ["gen-consult"],
                self.slot_days[0],
            )
            doctor = self.rng.choice(self.doctor_ids)
            start = self.rng.choice(STARTS) if i % 2 else ""
        req = booking_pb2.CreateBookingRequest(
            patient=who,
            service_ids=services,
            appointment_date=day,
            request_id=uid("chaos"),
            doctor_id=doctor,
            start_time=start,
        )
        if i % 8 == 7:  # waitlist traffic instead
            req = self.waitlist.request()
            who = req.patient
        response = await retrying(
            lambda: client.bookings.CreateBooking(req, metadata=client.auth(), timeout=10), self.report
        )
        booking = response.booking
        self.report.successes.append(time.monotonic())
        self.created[booking.id] = booking
        self.patients[booking.id] = who.id
        self.report.bookings += 1
        if req.waitlist:
            self.waitlist.ids.append(booking.id)
        else:
            self.money.maybe_start(client, booking.id)
        if self.rng.random() < (0.3 if req.waitlist else 0.1):
            await self._cancel(client, booking.id)
        if self.rng.random() < 0.05:
            await self._duplicate(booking.id)

    async def _reschedules(self, client: Client, loaded: asyncio.Event) -> None:
        """While the load runs: move a CONFIRMED booking of the doctors' days every few arrivals, to
        the other day or doctor and, for a timed one, to a time many others want too."""
        while not loaded.is_set():
            await asyncio.sleep(self.interval_s * 3)
            candidates = [b.id for b in self.created.values() if b.doctor_id in self.doctor_ids]
            if not candidates:
                continue
            booking_id = self.rng.choice(candidates)
            b = await self._retry(lambda booking_id=booking_id: client.get(booking_id))
            if b.status != c.BOOKING_STATUS_CONFIRMED:
                continue
            target = {"appointment_date": self.rng.choice(self.slot_days[:2])}
            if self.rng.random() < 0.5:
                target["doctor_id"] = self.rng.choice(self.doctor_ids)
            if b.start_time:
                target["start_time"] = self.rng.choice(STARTS[:4])  # contested: the first hour
            await self.moves.move(client, b.id, **target)

    def _retry(self, call):
        return retrying(call, self.report)

    async def _cancel(self, client: Client, booking_id: str) -> None:
        req = booking_pb2.CancelBookingRequest(booking_id=booking_id, reason="chaos")
        try:
            await retrying(
                lambda: client.bookings.CancelBooking(req, metadata=client.auth(), timeout=10), self.report
            )
            self.report.cancellations += 1
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already rejected: fine
                raise

    async def _duplicate(self, booking_id: str) -> None:
        """Publish a booking's saga messages again, with fresh ids so JetStream cannot drop them."""
        try:
            nc = await nats.connect(
                servers=self.servers.nats_servers, connect_timeout=1, max_reconnect_attempts=1
            )
        except Exception:
            return  # NATS is being restarted right now
        try:
            js = nc.jetstream(timeout=2)
            prefixes = (
                subjects.PLACES_REQUESTED,
                subjects.PLACES_RESERVED,
                subjects.PLACES_DECIDED,
                subjects.PLACES_RELEASE,
                subjects.PLACES_OFFERED,
                subjects.PLACES_EXPIRED,
                subjects.PLACES_ACCEPT,
                subjects.PLACES_MOVE,
                subjects.PLACES_MOVED,
                subjects.DISCOUNT_REQUESTED,
                subjects.DISCOUNT_DECIDED,
                subjects.QUOTA_RELEASE,
                f"{subjects.SEND}.app",  # a delivery job again: the patient is still told once
            )
            for prefix in prefixes:
                try:
                    msg = await js.get_msg(
                        subjects.SAGA_STREAM, subject=subjects.saga_subject(prefix, booking_id)
                    )
                except Exception:
                    continue
                await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": uid("dup")})
                self.report.duplicates_injected += 1
        except Exception:
            pass
        finally:
            await nc.close()

    # -- faults ---------------------------------------------------------------------------------

    async def _chaos(self, done: asyncio.Event) -> None:
        assert self.system is not None
        faults: list[str] = []
        rounds = 0
        while not (done.is_set() and rounds >= 1 and not faults):  # at least one full round
            await asyncio.sleep(self.kill_every_s * self.rng.uniform(0.5, 1.5))
            if not faults:
                rounds += 1  # every round hits each service and both servers once, in random order
                faults = list(self.faults)
                self.rng.shuffle(faults)
            victim = faults.pop()
            if victim not in ("nats", "redis") and self.instances > 1:
                victim += self.rng.choice(["", *(f"@{i}" for i in range(2, self.instances + 1))])
            self.report.faults.append((time.monotonic(), victim))
            if victim == "nats" and self.nats_nodes > 1:  # the worst node to lose: a stream leader
                node = self._leader_node(rounds)
                await asyncio.to_thread(self._restart_node, node)
            elif victim in ("nats", "redis"):
                await asyncio.to_thread(self._restart_server, victim)
            else:
                self.system.kill(victim)
                self.report.kills[victim.partition("@")[0]] += 1
                await asyncio.sleep(self.rng.uniform(0, 0.5))
                await asyncio.to_thread(self.system.start, (victim,))

    async def _watch_leaders(self, done: asyncio.Event, period_s: float = 0.1) -> None:
        """Ask the cluster for each stream's leader every 100 ms (from a client that follows the
        surviving nodes); the longest span with no leader, or no answer, is the outage the
        replicated streams had."""
        streams = (subjects.SAGA_STREAM, subjects.EVENTS_STREAM)
        since: dict[str, float | None] = dict.fromkeys(streams)
        worst = dict.fromkeys(streams, 0.0)
        nc = await nats.connect(
            servers=self.servers.nats_servers, max_reconnect_attempts=-1, reconnect_time_wait=0.1
        )
        js = nc.jetstream(timeout=0.5)
        try:
            while not done.is_set():
                for stream in streams:
                    now = time.monotonic()
                    try:
                        info = await js.stream_info(stream)
                        leader = info.cluster.leader if info.cluster else None
                    except Exception:
                        leader = None
                    self._leaders[stream] = leader
                    if leader is None:
                        since[stream] = since[stream] or now
                        worst[stream] = max(worst[stream], time.monotonic() - since[stream])
                    else:
                        since[stream] = None
                await asyncio.sleep(period_s)
        finally:
            self.report.leaderless_s = {k: round(v, 2) for k, v in worst.items()}
            await nc.close()

    def _leader_node(self, turn: int) -> int:
        """The node leading one of the streams (they take turns) as the leader watch last saw it,
        else a random one. Node names are clinic-nats-<port>."""
        leader = self._leaders.get((subjects.SAGA_STREAM, subjects.EVENTS_STREAM)[turn % 2])
        if leader is None:
            return self.rng.randrange(self.nats_nodes)
        return self.servers.node_ports.index(int(leader.rsplit("-", 1)[1]))

    def _restart_node(self, index: int) -> None:
        """A cluster node dies (SIGKILL) and comes back 1-3 s later."""
        self.servers.restart_node(index, down_s=self.rng.uniform(1.0, 3.0))
        self.report.server_restarts["nats-node"] += 1

    def _restart_server(self, which: str) -> None:
        server = self.servers.nats if which == "nats" else self.servers.redis
        assert server is not None
        server.kill()
        time.sleep(self.rng.uniform(0.2, 1.0))
        (self.servers.start_nats if which == "nats" else self.servers.start_redis)()
        self.report.server_restarts[which] += 1

    async def _inject_poison(self) -> None:
        """Published like any client would: retried (same Nats-Msg-Id) while a node that just came
        back still has no stream leader to answer."""
        nc = await nats.connect(servers=self.servers.nats_servers)
        try:
            await nats_io.publish(
                nc.jetstream(timeout=2),
                subjects.saga_subject(subjects.DISCOUNT_REQUESTED, "poison"),
                b"\x00garbage",
                uid("poison"),
                attempts=30,
            )
        finally:
            await nc.close()

    # -- verification ---------------------------------------------------------------------------

    async def _settle(self, client: Client, deadline_s: float = 120.0) -> dict[str, c.Booking]:
        deadline = time.monotonic() + deadline_s
        final: dict[str, c.Booking] = {}
        waiting = set(self.created)
        while waiting and time.monotonic() < deadline:
            for booking_id in list(waiting):
                try:  # retried: a channel that saw the gateway killed may still be in reconnect backoff
                    b = await retrying(lambda booking_id=booking_id: client.get(booking_id), self.report)
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.NOT_FOUND:
                        continue
                    raise
                if _settled(b) and self.moves.answered(b) and await self._told(client, b):
                    final[booking_id] = b
                    waiting.discard(booking_id)
            if waiting:
                await asyncio.sleep(0.5)
        for booking_id in waiting:
            self.report.problems.append(f"booking {booking_id} did not settle")
            self.report.lost += 1
        return final

    async def _told(self, client: Client, b: c.Booking) -> bool:
        """notification_svc recorded an in-app message for every event it tells of (and no more)."""
        found = await retrying(lambda: client.deliveries(b.id), self.report)
        self.told[b.id] = app_deliveries(found)
        return self.told[b.id] >= told_count(b)

    async def _verify(self, client: Client, final: dict[str, c.Booking]) -> None:
        r = self.report
        applied_by_day: Counter = Counter()
        for b in final.values():
            r.outcomes[c.BookingStatus.Name(b.status).removeprefix("BOOKING_STATUS_")] += 1
            if b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED:
                applied_by_day[b.discount.quota_date] += 1
            steps = Counter(e.type for e in b.history)
            doubled = [
                c.EventType.Name(t)
                for t, n in steps.items()
                if t not in REPEATABLE_EVENTS and t not in ANSWERS and n > 1
            ] + self.moves.problems(b)
            if self.told.get(b.id, 0) != told_count(b):
                doubled.append(f"told x{self.told.get(b.id, 0)} for {told_count(b)} events told of")
            if [e.sequence for e in b.history] != list(range(1, len(b.history) + 1)):
                doubled.append("sequence gap or repeat")
            if doubled:
                r.doubled += 1
                r.problems.append(f"booking {b.id}: {doubled}")
        days = set(applied_by_day) | {b.discount.quota_date for b in final.values() if b.discount.quota_date}
        for day in days:
            used = (await client.quota(day)).used
            if used != applied_by_day[day]:
                r.doubled += 1
                r.problems.append(
                    f"quota {day}: used {used} != {applied_by_day[day]} bookings holding APPLIED"
                )
        per_patient = Counter(self.patients[bid] for bid in final if self.patients[bid] != "fail_test_user")
        r.doubled += sum(1 for n in per_patient.values() if n > 1)
        for pid in list(per_patient)[:50]:  # one booking per request id, seen from the store's side
            listed = await client.bookings.ListBookings(
                booking_pb2.ListBookingsRequest(patient_id=pid), metadata=client.auth()
            )
            if len(listed.bookings) != 1:
                r.doubled += 1
                r.problems.append(f"patient {pid} has {len(listed.bookings)} bookings")
        self.moves.count(final.values())
        await self._check_places(final)
        await self._check_dead_letters()

    async def _check_places(self, final: dict[str, c.Booking], deadline_s: float = 30.0) -> None:
        """What schedule_svc holds equals what the bookings say: every token, time interval and
        single-slot place is held by exactly the CONFIRMED bookings that name it, each once.

        A release can still be on its way for a booking cancelled before its places were decided
        (its history shows no reservation to wait for), so this waits, with a deadline, for a quiet
        moment at which the two agree."""
        redis = await redis_client(self.servers)
        try:
            deadline = time.monotonic() + deadline_s
            while True:
                problems, counted = await self._places_problems(redis, final)
                if not problems or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        finally:
            await redis.aclose()
        self.report.places_checked = counted
        self.report.doubled += len(problems)
        self.report.problems += problems

    async def _places_problems(self, redis, final: dict[str, c.Booking]) -> tuple[list[str], Counter]:
        problems: list[str] = []
        counted: Counter = Counter()
        # Reschedules move bookings between the doctors and the first two days: every token and
        # interval there is held by exactly the holder the booking's record names, so none holds
        # two sets (an old one left behind) or none (its move's places lost).
        for day, doctor_id in itertools.product(self.slot_days[:2], self.doctor_ids):
            confirmed = [
                b
                for b in final.values()
                if b.doctor_id == doctor_id
                and b.appointment_date == day
                and b.status == c.BOOKING_STATUS_CONFIRMED
            ]
            _, tokens_key, slots_key = doctor_keys(day, doctor_id)
            tokens = {int(k): v.decode() for k, v in (await redis.hgetall(tokens_key)).items()}
            slots = {k.decode(): v.decode() for k, v in (await redis.hgetall(slots_key)).items()}
            expected = {b.token: holder(b) for b in confirmed}
            if tokens != expected or len(expected) != len(confirmed):
                problems.append(f"doctor {doctor_id} {day}: tokens held {tokens} != confirmed {expected}")
            if not set(tokens) <= set(range(1, DOCTOR_CAPACITY + 1)):
                problems.append(f"doctor {doctor_id}: a token outside 1..{DOCTOR_CAPACITY}: {sorted(tokens)}")
            timed = {holder(b) for b in confirmed if b.start_time}
            if set(slots) != timed:
                problems.append(
                    f"doctor {doctor_id}: intervals held by {sorted(slots)} != confirmed {sorted(timed)}"
                )
            spans = sorted(tuple(map(int, v.split(","))) for v in slots.values())
            if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
                problems.append(f"doctor {doctor_id}: overlapping intervals {spans}")
            counted["tokens"] += len(tokens)
            counted["intervals"] += len(slots)
        for slot_day in self.slot_days:
            holders = {raw.decode() for raw in await redis.smembers(service_key(slot_day, "single-slot"))}
            confirmed_ids = {
                b.id
                for b in final.values()
                if b.appointment_date == slot_day
                and b.status == c.BOOKING_STATUS_CONFIRMED
                and any(s.service_id == "single-slot" for s in b.services)
            }
            if holders != confirmed_ids or len(holders) > 1:
                problems.append(f"single-slot {slot_day}: held by {holders}, confirmed {confirmed_ids}")
            counted["service places"] += len(holders)
        return problems, counted

    async def _check_dead_letters(self, deadline_s: float = 30.0) -> None:
        """The poison message reaches DEAD_LETTERS (with a deadline: it was injected last), and
        nothing else is there."""
        nc = await nats.connect(servers=self.servers.nats_servers)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + deadline_s
            while True:
                try:
                    info = await js.stream_info(subjects.DLQ_STREAM)
                    if info.state.messages >= 1:
                        break
                except nats_io.TRANSIENT_NATS_ERRORS:
                    pass  # a cluster node that just came back may not answer yet
                if time.monotonic() > deadline:
                    self.report.problems.append("the poison message never reached DEAD_LETTERS")
                    return
                await asyncio.sleep(0.2)
            self.report.dead_letters = info.state.messages
            for _, letter in await nats_io.dead_letters(js):
                if not letter.subject.endswith(".poison"):
                    self.report.problems.append(f"unexpected dead letter: {letter.subject} ({letter.reason})")
        finally:
            await nc.close()


def _settled(b: c.Booking) -> bool:
    if b.status not in FINAL and not (
        b.status == c.BOOKING_STATUS_WAITLISTED and not b.HasField("offer_expires_at")
    ):
        return False  # (a booking still waiting in line, with no offer, is quiet)
    if b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED and b.status != c.BOOKING_STATUS_CONFIRMED:
        return False  # compensation pending
    kinds = {e.type for e in b.history}
    if (
        b.status != c.BOOKING_STATUS_CONFIRMED
        and c.EVENT_TYPE_PLACES_RESERVED in kinds
        and c.EVENT_TYPE_PLACES_RELEASED not in kinds
    ):
        return False  # places on their way back
    return True
