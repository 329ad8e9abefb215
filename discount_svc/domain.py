"""R1 (eligibility), the blocklist and R2 (the quota, stated): pure rules, no I/O.

R2 is applied by store.py's scripts (store_grant.lua, store_release.lua); `take_quota` and
`give_back_quota` state the same rule, and tests/integration/test_quota_rule.py holds them together.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from types import MappingProxyType

from clinic.v1 import common_pb2, saga_pb2
from clinic_common.clock import parse_date
from clinic_common.money import format_minor, money, percent_of

QUOTA_EXHAUSTED_MESSAGE = "Daily discount quota reached"
BLOCKED_MESSAGE = "Patient is not allowed to book"


@dataclass(frozen=True)
class Rules:
    percent: int
    high_value_threshold_minor: int
    blocked_patient_ids: frozenset[str]


class Verdict(Enum):
    BLOCKED = "blocked"
    NOT_ELIGIBLE = "not_eligible"
    ELIGIBLE = "eligible"  # needs a unit of the day's quota


def is_birthday(date_of_birth: date, today: date) -> bool:
    """29 February birthdays are celebrated on 28 February in years without one."""
    if (date_of_birth.month, date_of_birth.day) == (today.month, today.day):
        return True
    return (
        (date_of_birth.month, date_of_birth.day) == (2, 29)
        and (today.month, today.day) == (2, 28)
        and not calendar.isleap(today.year)
    )


def eligibility(request: saga_pb2.DiscountRequested, rules: Rules) -> tuple[Verdict, str]:
    """The verdict before the quota, and why (a reason for the event message)."""
    if request.patient_id in rules.blocked_patient_ids:
        return Verdict.BLOCKED, BLOCKED_MESSAGE
    today = parse_date(request.clinic_date)
    if request.gender == common_pb2.GENDER_FEMALE and is_birthday(parse_date(request.date_of_birth), today):
        return Verdict.ELIGIBLE, "birthday"
    if request.base_price.amount_minor > rules.high_value_threshold_minor:
        return Verdict.ELIGIBLE, "high-value"
    return Verdict.NOT_ELIGIBLE, "No discount: not eligible"


def applied(request: saga_pb2.DiscountRequested, rules: Rules, why: str) -> saga_pb2.DiscountDecided:
    amount = percent_of(request.base_price.amount_minor, rules.percent)
    return saga_pb2.DiscountDecided(
        booking_id=request.booking_id,
        discount=common_pb2.Discount(
            outcome=common_pb2.DISCOUNT_OUTCOME_APPLIED,
            percent=rules.percent,
            amount=money(amount, request.base_price.currency),
            quota_date=request.clinic_date,
        ),
        message=f"{rules.percent}% {why} discount applied: -{format_minor(amount)}",
    )


def refused(request: saga_pb2.DiscountRequested, outcome: int, message: str) -> saga_pb2.DiscountDecided:
    return saga_pb2.DiscountDecided(
        booking_id=request.booking_id,
        discount=common_pb2.Discount(outcome=outcome, amount=money(0, request.base_price.currency)),
        message=message,
    )


# R2, stated: per clinic day at most `limit` units; each booking's grant record (its idempotency
# key) answers a retry the same; a unit is given back once, and a give-back before any take closes
# the booking so a late take cannot hold a unit.
@dataclass(frozen=True)
class QuotaDay:
    limit: int
    used: int = 0
    # booking -> its grant record: applied, exhausted, released or closed
    grants: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def holders(self) -> frozenset[str]:
        return frozenset(b for b, g in self.grants.items() if g == "applied")


def _with(day: QuotaDay, booking_id: str, grant: str, used: int) -> QuotaDay:
    return QuotaDay(day.limit, used, MappingProxyType({**day.grants, booking_id: grant}))


def take_quota(day: QuotaDay, booking_id: str) -> tuple[QuotaDay, str]:
    """'applied' while units remain, else 'exhausted'; a booking seen before gets its first answer."""
    prior = day.grants.get(booking_id)
    if prior is not None:
        return day, prior
    if day.used >= day.limit:
        return _with(day, booking_id, "exhausted", day.used), "exhausted"
    return _with(day, booking_id, "applied", day.used + 1), "applied"


def give_back_quota(day: QuotaDay, booking_id: str) -> tuple[QuotaDay, str]:
    """'released' (the unit comes back, once), 'closed' (nothing taken yet), or the prior answer."""
    prior = day.grants.get(booking_id)
    if prior == "applied":
        return _with(day, booking_id, "released", max(day.used - 1, 0)), "released"
    if prior is None:
        return _with(day, booking_id, "closed", day.used), "closed"
    return day, prior
