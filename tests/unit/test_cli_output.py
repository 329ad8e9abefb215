"""What the CLI prints is names, never enum numbers, and plain unwrapped lines when piped."""

from __future__ import annotations

import re

from clinic.v1 import common_pb2 as c
from clinic_cli.scenarios import summary
from clinic_tools.processes import first_error
from clinic_tools.stats import percentile


def test_a_scenario_failure_names_the_outcome():
    b = c.Booking(
        status=c.BOOKING_STATUS_REJECTED,
        rejection_reason=c.REJECTION_REASON_QUOTA_EXHAUSTED,
        discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED),
    )
    assert summary(b) == "REJECTED (QUOTA_EXHAUSTED), discount QUOTA_EXHAUSTED"
    assert not re.search(r"\d", summary(b))


def test_the_reason_a_process_died_is_its_exception_line():
    log = (
        '{"event": "gateway.starting", "level": "info"}\n'
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    bind()\n"
        "OSError: [Errno 98] Address already in use\n"
    )
    assert first_error(log) == "OSError: [Errno 98] Address already in use"
    assert first_error("configuration error: CLINIC_LOG_LEVEL='loud' is not a level\n").startswith(
        "configuration error: CLINIC_LOG_LEVEL"
    )


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
