"""Checks every service applies to what a caller sends: pure functions, no grpc, nats or redis.

Digits are ASCII digits only (`str.isdigit` and a Unicode `\\d` also accept full-width and other
scripts' digits, which would let `+91９９…` register a second patient for a number already known),
and every pattern must match the whole text (`re.match` with `$` lets a trailing newline through).
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

Violations = list[tuple[str, str]]

MAX_ID_LEN = 64
MAX_PHONE_LEN = 32  # as typed, with spaces, dashes and brackets
MAX_EMAIL_LEN = 254

DIGITS = re.compile(r"[0-9]+")
# Patient ids and token subjects: they become Redis key parts, never NATS subject tokens.
PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]*")
# Ids that become NATS subject tokens (doctor ids in queue subjects): no dots, no wildcards.
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]+")
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_NOISE = re.compile(r"[\s\-().\[\]]")

PHONE_PROBLEM = "is not a phone number (digits, optionally with +country code)"
EMAIL_PROBLEM = "must be an email address such as name@example.com"


def full(pattern: re.Pattern[str], text: str) -> bool:
    """True when `pattern` matches all of `text` (no trailing newline slips through)."""
    return pattern.fullmatch(text) is not None


def is_id(text: str, pattern: re.Pattern[str] = PATIENT_ID) -> bool:
    """A non-empty id of at most MAX_ID_LEN characters, all of it in `pattern`'s shape."""
    return 0 < len(text) <= MAX_ID_LEN and full(pattern, text)


def ascii_digits(text: str) -> bool:
    return full(DIGITS, text)


def normalise_phone(raw: str, country_code: str) -> str | None:
    """E.164 (`+919876543210`) from any usual spelling, or None when it is not a phone number.

    Spaces, dashes, dots and brackets are dropped; `00` becomes `+`; a 10-digit number gets the
    clinic's country code, and so does an 11-digit one with a trunk `0` in front.
    """
    if len(raw) > MAX_PHONE_LEN:
        return None
    text = _PHONE_NOISE.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        if not ascii_digits(text):
            return None
        if len(text) == 11 and text.startswith("0"):
            text = text[1:]
        if len(text) == 10:
            text = f"+{country_code}{text}"
        elif text.startswith(country_code) and len(text) == len(country_code) + 10:
            text = "+" + text
        else:
            return None
    return text if full(E164, text) else None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str, field: str = "email") -> Violations:
    """An optional e-mail address: empty is fine, anything else must look like one."""
    if not email:
        return []
    if len(email) > MAX_EMAIL_LEN:
        return [(field, f"at most {MAX_EMAIL_LEN} characters")]
    return [] if full(EMAIL, normalise_email(email)) else [(field, EMAIL_PROBLEM)]


def check_phone(phone: str, country_code: str, field: str = "phone") -> tuple[Violations, str]:
    """An optional phone: its violations and its E.164 form ("" when none was given)."""
    if not phone.strip():
        return [], ""
    normalised = normalise_phone(phone, country_code)
    if normalised is None:
        return [(field, PHONE_PROBLEM)], ""
    return [], normalised


def undefined_enums(message: Message, prefix: str = "") -> Violations:
    """Every enum field, at any depth, whose value is not one the enum defines.

    proto3 enums are open: a number the schema does not name parses fine and would otherwise be
    taken as given (a gender 7 lists no services instead of being refused).
    """
    bad: Violations = []
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_ENUM:
            known = field.enum_type.values_by_number
            values = value if field.is_repeated else [value]
            for i, v in enumerate(values):
                if v not in known:
                    where = f"{name}[{i}]" if field.is_repeated else name
                    bad.append((where, f"not a {field.enum_type.name}"))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            items = value if field.is_repeated else [value]
            for i, item in enumerate(items):
                where = f"{name}[{i}]." if field.is_repeated else f"{name}."
                bad += undefined_enums(item, where)
    return bad
