"""discount_svc's use cases: decide a booking's discount, give a unit back (compensation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from clinic.v1 import common_pb2, saga_pb2
from clinic_common import metrics, subjects
from clinic_common.logs import get_logger

from . import domain
from .store import QuotaStore

log = get_logger(__name__)

Publish = Callable[[str, bytes, str], Awaitable[None]]  # subject, payload, msg id


class Discounts:
    def __init__(self, quota: QuotaStore, rules: domain.Rules, publish: Publish) -> None:
        self._quota = quota
        self._rules = rules
        self._publish = publish

    async def on_requested(
        self, request: saga_pb2.DiscountRequested, places: saga_pb2.PlacesDecided | None = None
    ) -> None:
        """Decide and answer booking_svc; `places`: the reservation this follows, passed on with it."""
        verdict, why = domain.eligibility(request, self._rules)
        if verdict is domain.Verdict.BLOCKED:
            decided = domain.refused(request, common_pb2.DISCOUNT_OUTCOME_PATIENT_BLOCKED, why)
        elif verdict is domain.Verdict.NOT_ELIGIBLE:
            decided = domain.refused(request, common_pb2.DISCOUNT_OUTCOME_NOT_ELIGIBLE, why)
        else:
            granted = await self._quota.grant(request.clinic_date, request.booking_id)
            metrics.QUOTA_GRANTS.labels(granted).inc()
            if granted == "applied":
                decided = domain.applied(request, self._rules, why)
            elif granted == "exhausted":
                decided = domain.refused(
                    request, common_pb2.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED, domain.QUOTA_EXHAUSTED_MESSAGE
                )
            else:  # the booking ended before we got to it; its release closed the door
                log.info("discount.too_late", booking_id=request.booking_id, grant=granted)
                return
        if places is not None:
            decided.places.CopyFrom(places)
        log.info(
            "discount.decided",
            booking_id=request.booking_id,
            outcome=common_pb2.DiscountOutcome.Name(decided.discount.outcome),
        )
        await self._publish(
            subjects.saga_subject(subjects.DISCOUNT_DECIDED, request.booking_id),
            decided.SerializeToString(),
            f"{request.booking_id}:discount.decided",
        )

    async def on_release_requested(self, request: saga_pb2.QuotaReleaseRequested) -> None:
        outcome = await self._quota.release(request.quota_date, request.booking_id)
        log.info("quota.release", booking_id=request.booking_id, outcome=outcome, reason=request.reason)
        if outcome != "released":
            return
        released = saga_pb2.QuotaReleased(booking_id=request.booking_id, quota_date=request.quota_date)
        await self._publish(
            subjects.saga_subject(subjects.QUOTA_RELEASED, request.booking_id),
            released.SerializeToString(),
            f"{request.booking_id}:quota.released",
        )
