"""Issue 19: the reserve script enforces a resolved day exactly as schedule_svc/domain.py states it
(presence, hours, breaks), and refuses a resolution that the date or the doctor moved past."""

from __future__ import annotations

import random

from schedule_svc import domain
from schedule_svc.places import PlacesStore, Request, Resolved
from tests.harness import future_date, uid


def _random_day(rng: random.Random) -> domain.DayPlan:
    start = rng.randrange(6 * 60, 11 * 60, 15)
    end = start + rng.randrange(60, 10 * 60, 15)
    breaks, at = [], start
    for _ in range(rng.randrange(0, 3)):
        at += rng.randrange(15, 180, 15)
        length = rng.randrange(15, 90, 15)
        if at + length < end:
            breaks.append((at, at + length))
        at += length
    return domain.DayPlan(rng.random() > 0.15, "", 5, start, end, tuple(breaks))


async def test_the_script_and_the_domain_agree_on_presence_hours_and_breaks(redis):
    rng = random.Random(19)
    store = PlacesStore(redis)
    day = future_date(200)
    checked = {"": 0, "doctor": 0, "hours": 0}
    for i in range(300):
        plan = _random_day(rng)
        begin = rng.randrange(plan.start - 60, plan.end + 30, 5)
        interval = (begin, begin + rng.choice((15, 30, 45, 60)))
        doctor_id = uid("d-fit")
        resolved = Resolved(
            plan.present, plan.capacity, plan.start, plan.end, domain.encode_breaks(plan.breaks), 0, 1
        )
        outcome = await store.reserve(
            Request(f"b-{i}-{doctor_id}", day, ["gen-consult"], doctor_id, *interval),
            [10_000],
            (plan.capacity, plan.start, plan.end),
            resolved=resolved,
        )
        expected = domain.fits_day(plan, interval)
        checked[expected] += 1
        if expected == "":
            assert outcome.state == "held", (plan, interval, outcome)
        else:
            wanted = "doctor" if expected == "doctor" else "slot"  # hours are refused as a slot
            assert (outcome.state, outcome.reason) == ("refused", wanted), (plan, interval, outcome)
    assert min(checked.values()) >= 20, checked  # every branch was exercised


async def test_a_resolution_the_date_or_the_doctor_moved_past_is_stale(redis):
    store = PlacesStore(redis)
    day, doctor_id = future_date(201), uid("d-stale")
    fresh = Resolved(True, 5, 540, 1020, "", 0, 3)
    first = await store.reserve(Request(uid("b"), day, ["gen-consult"], doctor_id), [10_000], resolved=fresh)
    assert first.state == "held"
    # A newer revision of the doctor was seen for this date: one resolved from an older one is stale.
    older = Resolved(True, 5, 540, 1020, "", 0, 2)
    stale = await store.reserve(Request(uid("b"), day, ["gen-consult"], doctor_id), [10_000], resolved=older)
    assert stale.state == "stale"
    # Leave written for the date (n moves on): a resolution read before it is stale too.
    absent = Resolved(False, 5, 540, 1020, "", 0, 3)
    held = await store.set_input(day, doctor_id, "leave", {"note": "x"}, absent, collect=True)
    assert held is not None and [h.token for h in held] == [1]
    before_leave = await store.reserve(
        Request(uid("b"), day, ["gen-consult"], doctor_id), [10_000], resolved=fresh
    )
    assert before_leave.state == "stale"
    state = await store.day(day, doctor_id)
    assert (state.n, state.leave) == (1, {"note": "x"})
    after = Resolved(False, 5, 540, 1020, "", state.n, 3)
    refused = await store.reserve(
        Request(uid("b"), day, ["gen-consult"], doctor_id), [10_000], resolved=after
    )
    assert (refused.state, refused.reason) == ("refused", "doctor")


async def test_a_settled_day_is_what_the_next_script_judges_by(redis):
    store = PlacesStore(redis)
    day, doctor_id = future_date(202), uid("d-settle")
    lunch = Resolved(True, 5, 540, 1020, domain.encode_breaks([(780, 840)]), 0, 4)
    assert await store.settle(day, doctor_id, lunch)
    assert not await store.settle(day, doctor_id, Resolved(True, 5, 540, 1020, "", 0, 3))  # older
    # A script that judges by the kept day (no resolution of its own: the waitlist's, a move's).
    into_lunch = await store.reserve(Request(uid("b"), day, ["gen-consult"], doctor_id, 790, 805), [10_000])
    assert (into_lunch.state, into_lunch.reason) == ("refused", "slot")
    before = await store.reserve(Request(uid("b"), day, ["gen-consult"], doctor_id, 765, 780), [10_000])
    assert before.state == "held"
