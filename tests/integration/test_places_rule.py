"""The reservation script (schedule_svc/places.py) and the places rule stated in Python
(schedule_svc/domain.py) agree: the same requests, in the same order, get the same answers.

Runs the real script on the test's valkey; each example on a date, doctor and services of its own.
"""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedule_svc.domain import PlacesAsk, PlacesDay, encode_breaks, take_places
from schedule_svc.places import PlacesStore, Request, Resolved
from tests.harness import future_date

DAY_START, DAY_END = 9 * 60, 17 * 60

ask = st.tuples(
    st.booleans(),  # with the doctor
    st.sampled_from([-1, 480, 540, 555, 570, 600, 1005, 1020]),  # start (-1: no interval; some outside)
    st.sampled_from([15, 30]),
    st.sets(st.sampled_from([0, 1]), min_size=1),  # which of the two services
)


async def _run(
    redis_url: str, capacity: int, service_caps: tuple[int, int], asks, breaks=()
) -> tuple[list, list]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = PlacesStore(client)
        day, doctor = future_date(), f"dr-{uuid.uuid4().hex[:8]}"
        service_ids = [f"svc-{uuid.uuid4().hex[:8]}" for _ in service_caps]
        model = PlacesDay(capacity=capacity, start=DAY_START, end=DAY_END, breaks=tuple(breaks))
        # The doctor's day as schedule_svc resolves it (its breaks too), handed to every reservation.
        resolved = Resolved(True, capacity, DAY_START, DAY_END, encode_breaks(breaks), 0, 0)
        got, wanted = [], []
        for i, (with_doctor, start, length, chosen) in enumerate(asks):
            booking = f"b-{i}-{uuid.uuid4().hex[:6]}"
            picked = sorted(chosen)
            end = start + length if start >= 0 else -1
            services = [service_ids[j] for j in picked]
            r = Request(booking, day, services, doctor if with_doctor else "", start, end)
            caps = [service_caps[j] for j in picked]
            outcome = await store.reserve(r, caps, (capacity, DAY_START, DAY_END), resolved=resolved)
            got.append((outcome.state, outcome.token, outcome.reason))
            a = PlacesAsk(
                booking,
                tuple((service_ids[j], service_caps[j]) for j in picked),
                r.doctor_id,
                start if with_doctor else -1,
                end if with_doctor else -1,
            )
            result = take_places(a, model)
            if isinstance(result, str):  # the script tells the caller `hours` as `slot`
                wanted.append(("refused", 0, "slot" if result == "hours" else result))
            else:
                model = result.day
                wanted.append(("held", result.token, ""))
        return got, wanted
    finally:
        await client.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    capacity=st.integers(0, 4),
    service_caps=st.tuples(st.integers(0, 3), st.integers(1, 5)),
    asks=st.lists(ask, min_size=1, max_size=12),
    breaks=st.sampled_from([(), ((540, 555),), ((570, 600), (1005, 1020))]),
)
def test_the_script_and_the_stated_rule_agree(servers, capacity, service_caps, asks, breaks):
    got, wanted = asyncio.run(_run(servers.redis_url, capacity, service_caps, asks, breaks))
    assert got == wanted
