"""R2 stated in discount_svc/domain.py: at most `limit` units a day, answers kept per booking,
a unit given back exactly once."""

from __future__ import annotations

from discount_svc.domain import QuotaDay, give_back_quota, take_quota


def _take_all(day: QuotaDay, bookings: list[str]) -> tuple[QuotaDay, list[str]]:
    answers = []
    for b in bookings:
        day, answer = take_quota(day, b)
        answers.append(answer)
    return day, answers


def test_at_most_the_limit_is_taken_in_a_day():
    day, answers = _take_all(QuotaDay(limit=100), [f"b{i}" for i in range(120)])
    assert answers.count("applied") == 100
    assert answers[100:] == ["exhausted"] * 20
    assert day.used == 100 and len(day.holders()) == 100


def test_a_retried_take_answers_the_same_and_takes_nothing_more():
    day, first = take_quota(QuotaDay(limit=2), "b1")
    again, second = take_quota(day, "b1")
    assert (first, second) == ("applied", "applied")
    assert again.used == 1


def test_an_exhausted_booking_stays_exhausted_after_a_unit_comes_back():
    day, _ = _take_all(QuotaDay(limit=1), ["b1", "b2"])
    day, released = give_back_quota(day, "b1")
    day, answer = take_quota(day, "b2")
    assert (released, answer, day.used) == ("released", "exhausted", 0)


def test_a_unit_is_given_back_exactly_once():
    day, _ = take_quota(QuotaDay(limit=3), "b1")
    day, first = give_back_quota(day, "b1")
    day, second = give_back_quota(day, "b1")
    assert (first, second, day.used) == ("released", "released", 0)
    assert day.holders() == frozenset()


def test_a_give_back_before_any_take_closes_the_booking():
    day, closed = give_back_quota(QuotaDay(limit=3), "b1")
    day, late = take_quota(day, "b1")
    assert (closed, late, day.used) == ("closed", "closed", 0)


def test_a_give_back_after_exhausted_returns_nothing():
    day, _ = _take_all(QuotaDay(limit=1), ["b1", "b2"])
    day, answer = give_back_quota(day, "b2")
    assert (answer, day.used) == ("exhausted", 1)
