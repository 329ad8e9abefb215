"""Date fields: a wrong shape and a day the calendar does not have are told apart."""

from __future__ import annotations

from datetime import date

import pytest

from clinic_common.clock import DateError, parse_date


def test_a_real_date_parses():
    assert parse_date("1992-02-29") == date(1992, 2, 29)


@pytest.mark.parametrize("text", ["1990-02-30", "2023-02-29", "1990-13-01", "1990-04-31", "1990-00-10"])
def test_an_impossible_day_is_not_a_real_date(text):
    with pytest.raises(DateError) as caught:
        parse_date(text)
    assert str(caught.value) == f"{text} is not a real date"


@pytest.mark.parametrize(
    "text", ["", "1990-2-3", "19900203", "1990/02/03", "1990-02-03T00", "199a-02-03", "１９９０-02-03"]
)
def test_a_wrong_shape_must_be_yyyy_mm_dd(text):
    with pytest.raises(DateError) as caught:
        parse_date(text)
    assert str(caught.value) == "must be a date as YYYY-MM-DD"
