"""`make chaos`: the long fault run. CLINIC_CHAOS_BOOKINGS sets its size (default 2000)."""

from __future__ import annotations

import os

from tests.chaos.chaos import Chaos


async def test_chaos_long(tmp_path):
    bookings = int(os.environ.get("CLINIC_CHAOS_BOOKINGS", "2000"))
    report = await Chaos(tmp_path, bookings=bookings, rate_per_s=25, kill_every_s=2.0, seed=11).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.dead_letters == 1
