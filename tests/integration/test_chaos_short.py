"""The short fault run inside `make test` (the long one is `make chaos`)."""

from __future__ import annotations

import pytest

from tests.chaos.chaos import Chaos

# A fault run settles within its own deadline and reports what did not; the test timeout is only a backstop.
pytestmark = pytest.mark.timeout(360)


async def test_short_chaos_loses_nothing_and_doubles_nothing(tmp_path):
    report = await Chaos(tmp_path, bookings=240, rate_per_s=20, kill_every_s=1.2, seed=3).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.dead_letters == 1
    assert sum(report.kills.values()) >= 4
    assert set(report.server_restarts) == {"nats", "redis"}
