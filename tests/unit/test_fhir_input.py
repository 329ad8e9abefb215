"""fhir_svc's parameters hold to the same input rules as the gRPC API: ASCII digits, whole matches."""

from __future__ import annotations

from datetime import date

import pytest

from clinic_common.errors import InvalidArgument
from fhir_svc import domain

WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize(
    "value", ["d-1.20261203.1000\n", "d-1.20261203.1000".translate(WIDE), "d-1.2026120.1000"]
)
def test_a_slot_id_is_whole_and_ascii(value):
    with pytest.raises(InvalidArgument):
        domain.parse_slot_id(value)


def test_a_good_slot_id_still_parses():
    assert domain.parse_slot_id("d-1.20261203.1000") == ("d-1", "2026-12-03", "10:00")


@pytest.mark.parametrize("value", ["ge2026-12-03".translate(WIDE), "ge2026-12-03\n"])
def test_a_date_parameter_is_whole_and_ascii(value):
    with pytest.raises(InvalidArgument):
        domain.date_range([value], date(2026, 12, 3))


@pytest.mark.parametrize("raw", ["１０", "10\n", "٣"])
def test_a_count_is_ascii_digits(raw):
    with pytest.raises(InvalidArgument):
        domain.count(raw)
