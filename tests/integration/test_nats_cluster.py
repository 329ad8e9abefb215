"""A 3-node JetStream cluster (replicas 3) under load while nodes are killed and restarted."""

from __future__ import annotations

import pytest

from tests.chaos.chaos import Chaos

# A fault run settles within its own deadline and reports what did not; the test timeout is only a backstop.
pytestmark = pytest.mark.timeout(360)


async def test_three_node_cluster_survives_node_kills(tmp_path):
    report = await Chaos(tmp_path, bookings=200, rate_per_s=25, kill_every_s=1.5, seed=9, nats_nodes=3).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.server_restarts["nats-node"] >= 1
