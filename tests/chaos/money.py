"""Money through the faults: payments (some sent twice with one request id), cancellations of paid
bookings and refunds, then the check "paid less refunded per booking equals its events; nothing
lost, nothing doubled"."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import grpc

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c
from tests.harness import Client, uid

SHARE = 0.2  # of the bookings that are not waitlisted, this many get paid for once confirmed
CONFIRM_WAIT_S = 60.0


class MoneyTraffic:
    def __init__(self, report, retry, rng: random.Random) -> None:
        self._report = report
        self._retry = retry
        self._rng = rng
        self._tasks: set[asyncio.Task] = set()
        # booking id -> request id -> (kind, amount, answer: ok | refused | unknown)
        self.ledger: dict[str, dict[str, tuple[int, int, str]]] = {}
        self.cancelled_paid: set[str] = set()
        self.figures: Counter = Counter()
        self.problems: list[str] = []

    def maybe_start(self, client: Client, booking_id: str) -> None:
        if self._rng.random() >= SHARE:
            return
        task = asyncio.create_task(self._pay_for(client, booking_id, self._rng.random()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    # -- traffic --------------------------------------------------------------------------------

    async def _pay_for(self, client: Client, booking_id: str, luck: float) -> None:
        booking = await self._confirmed(client, booking_id)
        if booking is None:
            return
        final = booking.final_price.amount_minor
        parts = [final] if luck < 0.5 or final < 2 else [final // 2, final - final // 2]
        for part in parts:
            request_id = uid("pay")
            answer = await self._money(client, booking_id, request_id, c.PAYMENT_ENTRY_KIND_PAYMENT, part)
            if answer == "ok" and luck < 0.25:  # the desk presses twice: the same request id once more
                again = await self._money(client, booking_id, request_id, c.PAYMENT_ENTRY_KIND_PAYMENT, part)
                self.figures["payments sent twice"] += 1
                if again != "ok":
                    self.problems.append(f"booking {booking_id}: a repeated payment answered {again}")
        if luck < 0.4:
            req = booking_pb2.CancelBookingRequest(booking_id=booking_id, reason="chaos: paid, cancelled")
            try:
                await self._retry(
                    lambda: client.bookings.CancelBooking(req, metadata=client.auth(), timeout=10)
                )
                self.cancelled_paid.add(booking_id)
                self.figures["paid bookings cancelled"] += 1
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
            if luck < 0.2:
                got = await self._retry(lambda: client.get(booking_id))
                due = got.payment.refund_due.amount_minor
                if due:
                    await self._money(client, booking_id, uid("refund"), c.PAYMENT_ENTRY_KIND_REFUND, due)
        elif luck > 0.8:
            await self._money(client, booking_id, uid("refund"), c.PAYMENT_ENTRY_KIND_REFUND, 100)

    async def _confirmed(self, client: Client, booking_id: str) -> c.Booking | None:
        deadline = time.monotonic() + CONFIRM_WAIT_S
        while time.monotonic() < deadline:
            b = await self._retry(lambda: client.get(booking_id))
            if b.status == c.BOOKING_STATUS_CONFIRMED:
                return b
            if b.status in (c.BOOKING_STATUS_REJECTED, c.BOOKING_STATUS_CANCELLED):
                return None
            await asyncio.sleep(0.3)
        return None

    async def _money(self, client: Client, booking_id: str, request_id: str, kind: int, amount: int) -> str:
        money = c.Money(currency="INR", amount_minor=amount)
        if kind == c.PAYMENT_ENTRY_KIND_PAYMENT:
            req = booking_pb2.RecordPaymentRequest(
                booking_id=booking_id, amount=money, method=c.PAYMENT_METHOD_CARD, request_id=request_id
            )
            call = client.bookings.RecordPayment
        else:
            req = booking_pb2.RefundPaymentRequest(
                booking_id=booking_id, amount=money, reason="chaos", request_id=request_id
            )
            call = client.bookings.RefundPayment
        try:
            await self._retry(lambda: call(req, metadata=client.auth(), timeout=10))
            answer = "ok"
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                answer = "refused"  # e.g. cancelled by the other traffic in between
            elif err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                answer = "unknown"  # retried past the deadline: it may or may not be recorded
            else:
                raise
        self.ledger.setdefault(booking_id, {})[request_id] = (kind, amount, answer)
        name = "payments" if kind == c.PAYMENT_ENTRY_KIND_PAYMENT else "refunds"
        self.figures[f"{name} {answer}"] += 1
        return answer

    # -- the check ------------------------------------------------------------------------------

    async def verify(self, client: Client) -> list[str]:
        """Every request id that answered OK is in its booking's ledger exactly once; nothing else
        is; paid and refunded are the ledger's sums and match the events; a paid booking cancelled
        is owed paid less refunded."""
        problems = list(self.problems)
        for booking_id, sent in self.ledger.items():
            b = await self._retry(lambda booking_id=booking_id: client.get(booking_id))
            entries = Counter(e.request_id for e in b.payment.entries)
            for request_id, n in entries.items():
                if n > 1:
                    problems.append(f"booking {booking_id}: request {request_id} recorded {n} times")
                if request_id not in sent:
                    problems.append(f"booking {booking_id}: an entry nobody sent ({request_id})")
            for e in b.payment.entries:
                kind, amount, _ = sent.get(e.request_id, (e.kind, e.amount.amount_minor, ""))
                if (kind, amount) != (e.kind, e.amount.amount_minor):
                    problems.append(f"booking {booking_id}: entry {e.request_id} is not what was sent")
            for request_id, (_, _, answer) in sent.items():
                if answer == "ok" and request_id not in entries:
                    problems.append(
                        f"booking {booking_id}: payment/refund {request_id} answered OK but is lost"
                    )
            paid = sum(
                e.amount.amount_minor for e in b.payment.entries if e.kind == c.PAYMENT_ENTRY_KIND_PAYMENT
            )
            back = sum(
                e.amount.amount_minor for e in b.payment.entries if e.kind == c.PAYMENT_ENTRY_KIND_REFUND
            )
            kinds = Counter(e.type for e in b.history)
            if (kinds[c.EVENT_TYPE_PAYMENT_RECORDED], kinds[c.EVENT_TYPE_PAYMENT_REFUNDED]) != (
                sum(1 for e in b.payment.entries if e.kind == c.PAYMENT_ENTRY_KIND_PAYMENT),
                sum(1 for e in b.payment.entries if e.kind == c.PAYMENT_ENTRY_KIND_REFUND),
            ):
                problems.append(f"booking {booking_id}: payment events do not match its ledger")
            if (b.payment.paid.amount_minor, b.payment.refunded.amount_minor) != (paid, back):
                problems.append(f"booking {booking_id}: paid/refunded are not the ledger's sums")
            if not 0 <= paid - back <= b.final_price.amount_minor:
                problems.append(f"booking {booking_id}: paid less refunded {paid - back} out of range")
            if (
                b.status == c.BOOKING_STATUS_CANCELLED
                and paid
                and b.payment.refund_due.amount_minor != paid - back
            ):
                problems.append(f"booking {booking_id}: cancelled, owed {b.payment.refund_due.amount_minor}")
            self.figures["bookings with money"] += bool(paid)
        return problems
