"""R2 under contention: concurrent eligible bookings never get more than the day's quota."""

from __future__ import annotations

import asyncio

from clinic.v1 import common_pb2 as c
from discount_svc.store import used_key
from tests.conftest import TEST_QUOTA
from tests.harness import future_date, patient, today_ist


async def _run_eligible(client, count: int) -> list[c.Booking]:
    day = future_date()
    created = await asyncio.gather(
        *(client.create(patient(), ["ultrasound"], appointment_date=day) for _ in range(count))
    )
    return await asyncio.gather(*(client.settled(b.id, timeout_s=40) for b in created))


async def test_n_plus_k_concurrent_eligible_bookings_get_exactly_n_discounts(client, redis):
    await redis.set(used_key(today_ist().isoformat()), 0)
    done = await _run_eligible(client, TEST_QUOTA + 7)
    applied = [b for b in done if b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED]
    exhausted = [b for b in done if b.rejection_reason == c.REJECTION_REASON_QUOTA_EXHAUSTED]
    assert len(applied) == TEST_QUOTA
    assert len(exhausted) == 7
    assert all(b.status == c.BOOKING_STATUS_CONFIRMED for b in applied)
    assert (await client.quota()).used == TEST_QUOTA
    await redis.set(used_key(today_ist().isoformat()), 0)


async def test_quota_at_n_minus_1_and_ten_concurrent_bookings_grants_exactly_one(client, redis):
    await redis.set(used_key(today_ist().isoformat()), TEST_QUOTA - 1)
    done = await _run_eligible(client, 10)
    assert sum(b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED for b in done) == 1
    assert sum(b.rejection_reason == c.REJECTION_REASON_QUOTA_EXHAUSTED for b in done) == 9
    quota = await client.quota()
    assert (quota.used, quota.remaining) == (TEST_QUOTA, 0)
    await redis.set(used_key(today_ist().isoformat()), 0)
