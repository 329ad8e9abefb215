"""R1, money and the clinic day: pure functions, no servers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from clinic.v1 import common_pb2 as c
from clinic.v1 import saga_pb2
from clinic_common.clock import FixedClock, clinic_day, parse_date
from clinic_common.money import format_minor, parse_major, percent_of
from discount_svc.domain import Rules, Verdict, applied, eligibility, is_birthday

IST = ZoneInfo("Asia/Kolkata")
RULES = Rules(
    percent=12, high_value_threshold_minor=100_000, blocked_patient_ids=frozenset({"fail_test_user"})
)


def request(gender=c.GENDER_FEMALE, dob="1990-11-22", price=50_000, day="2026-11-22", pid="p1"):
    return saga_pb2.DiscountRequested(
        booking_id="b1",
        patient_id=pid,
        gender=gender,
        date_of_birth=dob,
        base_price=c.Money(currency="INR", amount_minor=price),
        clinic_date=day,
    )


# -- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "paise"), [("500.00", 50_000), ("500", 50_000), ("0.5", 50), ("1800.05", 180_005), ("0", 0)]
)
def test_parse_major_to_paise(text, paise):
    assert parse_major(text) == paise


@pytest.mark.parametrize("text", ["-1", "1.234", "abc", "", "1,000", None, 12.5])
def test_parse_major_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_major(text)


@pytest.mark.parametrize(
    ("amount", "percent", "expected"),
    [
        (115_000, 12, 13_800),  # exact
        (4, 12, 0),  # 0.48 paise rounds down
        (13, 12, 2),  # 1.56 rounds up
        (1, 50, 1),  # 0.5 exactly: half-up
        (3, 50, 2),  # 1.5: half-up
        (125, 10, 13),  # 12.5: half-up
        (0, 12, 0),
    ],
)
def test_percent_of_rounds_half_up_to_the_paisa(amount, percent, expected):
    assert percent_of(amount, percent) == expected


def test_format_minor():
    assert format_minor(101_200) == "₹1,012.00"
    assert format_minor(5) == "₹0.05"


# -- R1 ------------------------------------------------------------------------------------------


def test_female_birthday_today_is_eligible():
    assert eligibility(request(), RULES) == (Verdict.ELIGIBLE, "birthday")


def test_male_birthday_is_not_eligible():
    assert eligibility(request(gender=c.GENDER_MALE), RULES)[0] is Verdict.NOT_ELIGIBLE


def test_female_not_birthday_is_not_eligible():
    assert eligibility(request(dob="1990-11-21"), RULES)[0] is Verdict.NOT_ELIGIBLE


def test_threshold_is_strict():
    assert eligibility(request(gender=c.GENDER_MALE, price=100_000), RULES)[0] is Verdict.NOT_ELIGIBLE
    assert eligibility(request(gender=c.GENDER_MALE, price=100_001), RULES) == (
        Verdict.ELIGIBLE,
        "high-value",
    )


def test_blocklist_wins_over_eligibility():
    assert eligibility(request(pid="fail_test_user", price=500_000), RULES)[0] is Verdict.BLOCKED


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 2, 28), True),  # 2026 has no 29 February: celebrated on the 28th
        (date(2026, 3, 1), False),
        (date(2028, 2, 29), True),  # leap year: on the day itself
        (date(2028, 2, 28), False),  # ... and not the day before
    ],
)
def test_29_february_birthdays(today, expected):
    assert is_birthday(date(2000, 2, 29), today) is expected


def test_applied_discount_amount_and_message():
    decided = applied(request(price=115_000), RULES, "birthday")
    assert decided.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED
    assert (decided.discount.percent, decided.discount.amount.amount_minor) == (12, 13_800)
    assert decided.discount.quota_date == "2026-11-22"
    assert decided.message == "12% birthday discount applied: -₹138.00"


# -- the clinic day ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "day"),
    [
        (datetime(2026, 11, 21, 18, 29, 59, tzinfo=UTC), date(2026, 11, 21)),  # 23:59:59 IST
        (datetime(2026, 11, 21, 18, 30, 0, tzinfo=UTC), date(2026, 11, 22)),  # midnight IST: new quota day
    ],
)
def test_quota_day_rolls_over_at_midnight_ist(utc, day):
    assert clinic_day(FixedClock(utc).now(), IST) == day


def test_birthday_is_judged_in_the_clinic_timezone():
    # 20:00 UTC on the 21st is already the 22nd in India: her birthday there.
    today = clinic_day(datetime(2026, 11, 21, 20, 0, tzinfo=UTC), IST)
    assert eligibility(request(day=today.isoformat()), RULES)[0] is Verdict.ELIGIBLE


@pytest.mark.parametrize("text", ["2026-2-1", "22/11/2026", "2026-11-22T00:00", "2026-02-30", ""])
def test_parse_date_is_strict(text):
    with pytest.raises(ValueError):
        parse_date(text)
