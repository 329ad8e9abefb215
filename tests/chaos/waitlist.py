"""Waitlist traffic for the fault run: one doctor's day with few tokens, bookings that ask to wait,
cancellations that free places, offers accepted (half of them) or left to run out.

Checked at a quiet moment after the faults: no token held by two bookings, the tokens held are
exactly the CONFIRMED bookings', no offer lost (never a free token while a booking still waits),
and every expired offer was passed on (the same check, plus each OFFER_EXPIRED booking had an offer).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c
from schedule_svc.places import doctor_keys
from tests.harness import Client, future_date, patient, redis_client, uid

from .reschedules import Moves, holder

CAPACITY = 3
OFFER_S = 3  # WAITLIST_OFFER_SECONDS of the fault run
EVERY = 8  # one booking in EVERY is waitlist traffic
WAITLISTED = c.BOOKING_STATUS_WAITLISTED
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}


class WaitlistTraffic:
    def __init__(self, moves: Moves | None = None) -> None:
        self.moves = moves
        self.day = future_date()
        self.away = future_date()  # where some confirmed bookings move to, freeing a place for the line
        self.doctor_id = ""
        self.ids: list[str] = []
        self.done: set[str] = set()  # final: the acceptor stops looking at them
        self.answered: set[str] = set()  # offers the acceptor dealt with
        self.figures: Counter = Counter()
        self._frees = 0  # places freed for the line so far: every other one by a reschedule away

    async def setup(self, client: Client) -> None:
        self.doctor_id = (await client.doctor(daily_capacity=CAPACITY)).id

    def request(self) -> booking_pb2.CreateBookingRequest:
        """Not R1-eligible (no quota unit ever), so the run's quota check is not affected."""
        return booking_pb2.CreateBookingRequest(
            patient=patient(),
            service_ids=["gen-consult"],
            appointment_date=self.day,
            request_id=uid("chaos-wl"),
            doctor_id=self.doctor_id,
            waitlist=True,
        )

    async def accept_offers(self, addr: str, stop: asyncio.Event) -> None:
        """Accept every other offer as it appears; leave the rest to run out. On a channel of its
        own: its calls while the gateway is down must not put the run's channel into backoff."""
        client = Client(addr)
        try:
            await self._accept_offers(client, stop)
        finally:
            await client.close()

    async def _accept_offers(self, client: Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                current = [await client.get(i) for i in self.ids if i not in self.done]
            except grpc.aio.AioRpcError as err:
                if err.code() not in TRANSIENT:
                    raise
                current = []
            someone_waits = any(
                b.status == WAITLISTED and not b.HasField("offer_expires_at") for b in current
            )
            for b in current:
                try:
                    await self._act(client, b, someone_waits)
                except grpc.aio.AioRpcError as err:
                    if err.code() not in TRANSIENT:
                        raise
                    self.answered.discard(b.id)  # try again on the next pass
                    self.done.discard(b.id)
            await asyncio.sleep(0.3)

    async def _act(self, client: Client, b: c.Booking, someone_waits: bool) -> None:
        pick = int(b.id, 16)
        if b.status == c.BOOKING_STATUS_CONFIRMED:
            if pick % 3 == 0:
                self.done.add(b.id)  # keeps its place
            elif someone_waits and self.moves is not None and b.appointment_date == self.day and self._turn():
                self.done.add(b.id)  # moves away: its freed token goes to the line as a cancellation's
                if await self.moves.move(client, b.id, appointment_date=self.away):
                    self.figures["moved away to free a place"] += 1
            elif someone_waits:  # two in three give their place up (moved away or cancelled)
                self.done.add(b.id)
                await client.cancel(b.id, "chaos: frees a place for the line")
                self.figures["cancelled to free a place"] += 1
        elif b.status in (c.BOOKING_STATUS_REJECTED, c.BOOKING_STATUS_CANCELLED):
            self.done.add(b.id)
        elif b.HasField("offer_expires_at") and b.id not in self.answered:
            self.answered.add(b.id)
            if pick % 2:
                self.figures["left to expire"] += 1
                return
            try:
                await client.accept_offer(b.id)
                self.figures["accepted"] += 1
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self.figures["accepted too late"] += 1

    def _turn(self) -> bool:
        self._frees += 1
        return self._frees % 2 == 1

    async def check(self, client: Client, servers, deadline_s: float = 60.0) -> list[str]:
        """Wait (with a deadline) for a quiet moment, then compare the tokens with the bookings."""
        redis = await redis_client(servers)
        try:
            deadline = time.monotonic() + deadline_s
            while True:
                problems = await self._problems(client, redis)
                if not problems or time.monotonic() > deadline:
                    return problems
                await asyncio.sleep(0.5)
        finally:
            await redis.aclose()

    async def _problems(self, client: Client, redis) -> list[str]:
        bookings = [await client.get(i) for i in self.ids]
        offered = [b for b in bookings if b.status == WAITLISTED and b.HasField("offer_expires_at")]
        waiting = [b for b in bookings if b.status == WAITLISTED and not b.HasField("offer_expires_at")]
        pending = [b for b in bookings if b.status == c.BOOKING_STATUS_PENDING]
        moving = [b for b in bookings if self.moves is not None and not self.moves.answered(b)]
        if offered or pending or moving:
            return [
                f"waitlist not quiet: {len(offered)} offers out, {len(pending)} pending, {len(moving)} moving"
            ]
        _, tokens_key, _ = doctor_keys(self.day, self.doctor_id)
        tokens = {int(k): v.decode() for k, v in (await redis.hgetall(tokens_key)).items()}
        confirmed = {
            b.token: holder(b)
            for b in bookings
            if b.status == c.BOOKING_STATUS_CONFIRMED and b.appointment_date == self.day
        }
        problems = []
        if len(set(tokens.values())) != len(tokens) or tokens != confirmed or len(tokens) > CAPACITY:
            problems.append(f"waitlist day: tokens held {tokens} != confirmed {confirmed}")
        if waiting and len(tokens) < CAPACITY:
            problems.append(f"offer lost: {CAPACITY - len(tokens)} free token(s) while {len(waiting)} wait")
        expired = [b for b in bookings if b.rejection_reason == c.REJECTION_REASON_OFFER_EXPIRED]
        never_offered = [
            b.id for b in expired if c.EVENT_TYPE_WAITLIST_OFFERED not in {e.type for e in b.history}
        ]
        if never_offered:
            problems.append(f"OFFER_EXPIRED without an offer: {never_offered}")
        had = [{e.type for e in b.history} for b in bookings]
        seen = {
            "bookings": len(bookings),
            "waited": sum(1 for kinds in had if c.EVENT_TYPE_WAITLISTED in kinds),
            "offers": sum(1 for kinds in had if c.EVENT_TYPE_WAITLIST_OFFERED in kinds),
            "expired": len(expired),
            "still waiting": len(waiting),
            "tokens held": len(tokens),
        }
        for name, value in seen.items():  # assigned, not added: this runs until a quiet moment
            self.figures[name] = value
        return problems
