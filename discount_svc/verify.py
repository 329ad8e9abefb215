"""The quota invariant, checked against the bookings themselves (asked from booking_svc over gRPC)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from clinic.v1 import booking_pb2, booking_pb2_grpc, common_pb2, saga_pb2
from clinic_common import principal

from .store import QuotaStore
from .usecases import Discounts

FINAL = {common_pb2.BOOKING_STATUS_REJECTED, common_pb2.BOOKING_STATUS_CANCELLED}


@dataclass
class Verdict:
    used_before: int
    bookings_applied: int = 0
    in_flight: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: bool = False


class QuotaVerifier:
    def __init__(
        self, quota: QuotaStore, discounts: Discounts, bookings: booking_pb2_grpc.BookingServiceStub
    ):
        self._quota = quota
        self._discounts = discounts
        self._bookings = bookings

    async def verify(self, day: str, repair: bool, caller: principal.Principal) -> Verdict:
        """Check `day`; bookings are read as `caller` (booking_svc decides what they may see)."""
        used, _ = await self._quota.reconcile(day, repair=False)
        verdict = Verdict(used_before=used)
        leaked: list[str] = []
        for booking_id in await self._quota.holders(day):
            try:
                response = await self._bookings.GetBooking(
                    booking_pb2.GetBookingRequest(booking_id=booking_id),
                    metadata=caller.metadata(),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                verdict.problems.append(f"{booking_id}: holds a unit but no such booking exists")
                leaked.append(booking_id)
                continue
            b = response.booking
            if b.discount.outcome == common_pb2.DISCOUNT_OUTCOME_APPLIED and b.discount.quota_date == day:
                if b.status in FINAL:
                    verdict.problems.append(f"{booking_id}: {_status(b)} but still holds its unit")
                    leaked.append(booking_id)
                else:
                    verdict.bookings_applied += 1
            elif b.status == common_pb2.BOOKING_STATUS_PENDING:
                verdict.in_flight += 1
            else:
                verdict.problems.append(f"{booking_id}: holds a unit but its discount is not APPLIED")
                leaked.append(booking_id)
        expected = verdict.bookings_applied + verdict.in_flight + len(leaked)
        if used != expected:
            verdict.problems.append(f"used is {used} but {expected} bookings hold a unit")
        if repair and verdict.problems:
            for booking_id in leaked:
                await self._discounts.on_release_requested(
                    saga_pb2.QuotaReleaseRequested(
                        booking_id=booking_id, quota_date=day, reason="verify-repair"
                    )
                )
            await self._quota.reconcile(day, repair=True)
            verdict.repaired = True
        return verdict


def _status(b: common_pb2.Booking) -> str:
    return common_pb2.BookingStatus.Name(b.status).removeprefix("BOOKING_STATUS_")
