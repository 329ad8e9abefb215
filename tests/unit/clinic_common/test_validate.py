"""clinic_common.validate and the parsers that lean on it: ASCII digits, whole matches, known enums."""

from __future__ import annotations

import pytest

from clinic.v1 import booking_pb2, common_pb2
from clinic_common import validate
from clinic_common.clock import parse_date
from clinic_common.money import parse_major
from clinic_common.timeutil import parse_hhmm

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize(
    "raw",
    [
        "9876543210".translate(FULL_WIDTH),
        "+91" + "9876543210".translate(FULL_WIDTH),
        "98765٤٣٢١٠",  # Arabic-Indic digits
        "9876543210\n+1",
        "9" * 10_000,
        "not-a-phone",
        "",
    ],
)
def test_a_phone_is_ascii_digits_or_nothing(raw):
    assert validate.normalise_phone(raw, "91") is None


def test_usual_spellings_of_one_phone_are_one_number():
    spellings = ["9876543210", "+91 98765-43210", "(0)98765 43210", "0091 9876543210", " 98765 43210\n"]
    assert {validate.normalise_phone(s, "91") for s in spellings} == {"+919876543210"}


@pytest.mark.parametrize("text", ["１０:００", "10:0٠", "10:00\n", "1:00", "10-00"])
def test_a_time_is_ascii_hh_mm(text):
    with pytest.raises(ValueError):
        parse_hhmm(text)


def test_a_good_time_still_parses():
    assert parse_hhmm("09:30") == 570


@pytest.mark.parametrize("text", ["２０２６-01-01", "2026-01-0１", "2026-01-01\n"])
def test_a_date_is_ascii_yyyy_mm_dd(text):
    with pytest.raises(ValueError):
        parse_date(text)


@pytest.mark.parametrize("text", ["５00.00", "500.0٠"])
def test_a_catalog_price_is_ascii(text):
    with pytest.raises(ValueError):
        parse_major(text)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (validate.PATIENT_ID, "x\n"),
        (validate.TOKEN_ID, "d\n"),
        (validate.CODE, "DR1\n"),
        (validate.EMAIL, "a@b.co\n"),
        (validate.E164, "+919876543210\n"),
    ],
)
def test_a_trailing_newline_is_not_part_of_an_id(pattern, text):
    assert not validate.full(pattern, text)
    assert validate.full(pattern, text.rstrip("\n"))


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "a b@c.d", "x" * 250 + "@e.com", "a@b.c\x00"])
def test_bad_emails_are_named(email):
    assert validate.check_email(email, "patient.email") != []
    assert validate.check_email(email, "patient.email")[0][0] == "patient.email"


def test_no_email_is_fine_and_a_good_one_is_too():
    assert validate.check_email("") == [] and validate.check_email("Asha@Example.com") == []


def test_undefined_enum_numbers_are_named_at_any_depth():
    req = booking_pb2.CreateBookingRequest(patient=common_pb2.Patient(id="p", gender=7))
    assert validate.undefined_enums(req) == [("patient.gender", "not a Gender")]
    assert validate.undefined_enums(booking_pb2.ListServicesRequest(gender=-1)) == [
        ("gender", "not a Gender")
    ]
    assert validate.undefined_enums(booking_pb2.ListBookingsRequest(status=99)) == [
        ("status", "not a BookingStatus")
    ]
    assert validate.undefined_enums(booking_pb2.ListServicesRequest(gender=common_pb2.GENDER_MALE)) == []
