"""booking_svc's use cases over a real Redis, several instances at once.

Two instances over one store: a copy one instance remembers never decides alone.

Each instance keeps the records it wrote as a hint. When another instance has moved a booking on
since, a saga message judged on the stale copy must be judged again on the stored record at once,
not refused and left to redelivery (which may land on the same instance again and again).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from booking_svc.saga import Bookings
from booking_svc.store import BookingStore
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.catalog import DEFAULT_CATALOG, load
from clinic_common.errors import ResourceExhausted
from clinic_common.principal import ANONYMOUS_ADMIN
from tests.harness import future_date, patient, uid


def _instance(redis, published: list, max_pending: int = 0) -> Bookings:
    async def publish(message: saga_pb2.OutboxMessage) -> None:
        published.append(message.subject)

    return Bookings(
        BookingStore(redis),
        publish,
        load(DEFAULT_CATALOG),
        ZoneInfo("Asia/Kolkata"),
        timeout_s=600,
        max_pending=max_pending,
    )


async def test_a_stale_copy_on_one_instance_does_not_block_a_step_another_instance_enabled(redis):
    published: list[str] = []
    first, second = _instance(redis, published), _instance(redis, published)
    request = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], appointment_date=future_date(), request_id=uid("inst")
    )
    created = await first.create(request, ANONYMOUS_ADMIN)  # `first` remembers the PENDING record

    decided = saga_pb2.DiscountDecided(
        booking_id=created.id,
        discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE),
        message="Not eligible",
    )
    await second.on_discount_decided(decided)  # `second` moves it on
    stored = await second.get(created.id, ANONYMOUS_ADMIN)
    assert stored.status == c.BOOKING_STATUS_CONFIRMED

    await second.cancel(created.id, "test", ANONYMOUS_ADMIN)  # and ends it: the places must go back

    # schedule_svc's answer reaches `first`, which saw neither step: it must apply, first time.
    released = saga_pb2.PlacesReleased(booking_id=created.id, freed=True)
    await first.on_places_released(released)
    after = await first.get(created.id, ANONYMOUS_ADMIN)
    assert [e.type for e in after.history][-1] == c.EVENT_TYPE_PLACES_RELEASED
    assert sum(e.type == c.EVENT_TYPE_PLACES_RELEASED for e in after.history) == 1

    # And the redelivery of the same answer (to either instance) changes nothing.
    await second.on_places_released(released)
    assert len((await first.get(created.id, ANONYMOUS_ADMIN)).history) == len(after.history)


async def test_creates_are_shed_once_max_pending_sagas_are_in_flight(servers):
    """With CLINIC_MAX_PENDING_BOOKINGS sagas in flight, CreateBooking is refused with
    RESOURCE_EXHAUSTED and stores nothing; a retried request id still gets its booking; a saga that
    ends makes room. (A Redis database of its own: no other test's sagas count here.)"""
    redis = aioredis.Redis.from_url(servers.redis_url, db=7)
    await redis.flushdb()
    published: list[str] = []
    bookings = _instance(redis, published, max_pending=2)
    day = future_date()
    patients = {r: patient() for r in ("r1", "r2", "r3")}

    def request(request_id: str) -> booking_pb2.CreateBookingRequest:
        return booking_pb2.CreateBookingRequest(
            patient=patients[request_id],
            service_ids=["gen-consult"],
            appointment_date=day,
            request_id=request_id,
        )

    try:
        first = await bookings.create(request("r1"), ANONYMOUS_ADMIN)
        await bookings.create(request("r2"), ANONYMOUS_ADMIN)
        stored_before = await redis.dbsize()
        with pytest.raises(ResourceExhausted) as refused:
            await bookings.create(request("r3"), ANONYMOUS_ADMIN)
        assert refused.value.retry_after_s > 0 and "2 bookings are already in progress" in str(refused.value)
        assert await redis.dbsize() == stored_before  # nothing half-written, request id r3 not taken
        await bookings.finish_publishing()
        assert len(published) == 4  # two messages each for the first two, nothing for it

        again = await bookings.create(request("r1"), ANONYMOUS_ADMIN)  # a client retry: no new work
        assert again.id == first.id

        await bookings.on_discount_decided(
            saga_pb2.DiscountDecided(
                booking_id=first.id, discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), message="-"
            )
        )
        third = await bookings.create(request("r3"), ANONYMOUS_ADMIN)  # one saga ended: room again
        assert third.status == c.BOOKING_STATUS_PENDING
    finally:
        await redis.flushdb()
        await redis.aclose()
