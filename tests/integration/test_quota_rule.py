"""The quota scripts (discount_svc/store_*.lua, run by store.py) and R2 stated in Python
(discount_svc/domain.py) agree: the same takes, give-backs and duplicates, in the same order, get
the same answers and leave the same count and holders.

Runs the real scripts on the test's valkey; each example on a clinic day of its own.
"""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discount_svc.domain import QuotaDay, give_back_quota, take_quota
from discount_svc.store import QuotaStore

# (take or give back, which of a few bookings): repeats of a booking are the duplicates.
op = st.tuples(st.sampled_from(["take", "give_back"]), st.integers(0, 5))


async def _run(redis_url: str, limit: int, ops) -> tuple[list, list]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = QuotaStore(client, limit)
        day = f"2099-{uuid.uuid4().hex[:10]}"
        bookings = [f"b-{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
        model = QuotaDay(limit=limit)
        got, wanted = [], []
        for kind, i in ops:
            if kind == "take":
                answer = await store.grant(day, bookings[i])
                model, expected = take_quota(model, bookings[i])
            else:
                answer = await store.release(day, bookings[i])
                model, expected = give_back_quota(model, bookings[i])
            got.append((answer, (await store.state(day)).used))
            wanted.append((expected, model.used))
        got.append(sorted(await store.holders(day)))
        wanted.append(sorted(model.holders()))
        return got, wanted
    finally:
        await client.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(0, 4), ops=st.lists(op, min_size=1, max_size=20))
def test_the_scripts_and_the_stated_rule_agree(servers, limit, ops):
    got, wanted = asyncio.run(_run(servers.redis_url, limit, ops))
    assert got == wanted
