"""Two instances of every service share the work without doubling any effect (issue: outgrow one machine)."""

from __future__ import annotations

import pytest

from tests.chaos.chaos import Chaos

# A fault run settles within its own deadline and reports what did not; the test timeout is only a backstop.
pytestmark = pytest.mark.timeout(360)


async def test_two_instances_of_each_service_under_load_with_kills(tmp_path):
    report = await Chaos(tmp_path, bookings=300, rate_per_s=40, kill_every_s=1.5, seed=5, instances=2).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.bookings == 300
