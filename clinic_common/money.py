"""Money in integer minor units (paise). No floats anywhere."""

from __future__ import annotations

import re

from clinic.v1 import common_pb2

CURRENCY = "INR"
_DECIMAL = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,2}))?")


def parse_major(text: str) -> int:
    """'1800.00' -> 180000 paise. Raises ValueError on anything else."""
    match = _DECIMAL.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a decimal amount like 500.00")
    whole, fraction = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(fraction)


def percent_of(amount_minor: int, percent: int) -> int:
    """percent% of amount, rounded half-up to the paisa (integer arithmetic only)."""
    if amount_minor < 0 or percent < 0:
        raise ValueError("amount and percent must not be negative")
    return (amount_minor * percent * 2 + 100) // 200


def money(amount_minor: int, currency: str = CURRENCY) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount_minor=amount_minor)


def format_minor(amount_minor: int, currency: str = CURRENCY) -> str:
    symbol = "₹" if currency == "INR" else f"{currency} "
    sign = "-" if amount_minor < 0 else ""
    whole, paise = divmod(abs(amount_minor), 100)
    return f"{sign}{symbol}{whole:,}.{paise:02d}"
