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


async def test_chaos_two_instances_of_each_service_long(tmp_path):
    bookings = int(os.environ.get("CLINIC_CHAOS_BOOKINGS", "2000")) // 2
    report = await Chaos(
        tmp_path, bookings=bookings, rate_per_s=25, kill_every_s=2.0, seed=12, instances=2
    ).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)


async def test_chaos_three_node_nats_cluster_long(tmp_path):
    bookings = int(os.environ.get("CLINIC_CHAOS_BOOKINGS", "2000")) // 2
    report = await Chaos(
        tmp_path, bookings=bookings, rate_per_s=25, kill_every_s=2.0, seed=13, nats_nodes=3
    ).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.server_restarts["nats-node"] >= 1


async def test_chaos_three_node_nats_cluster_leader_kills_only(tmp_path):
    """Only NATS faults: the node leading a stream is SIGKILLed again and again. Shows what a lost
    leader costs clients (booking intake goes on) next to how long the streams had none."""
    report = await Chaos(
        tmp_path, bookings=600, rate_per_s=30, kill_every_s=2.0, seed=21, nats_nodes=3, faults=("nats",)
    ).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.server_restarts["nats-node"] >= 3


async def test_chaos_notifications_while_notifier_killed_and_nats_restarted_long(tmp_path):
    """Issue 20: e-mail and webhook deliveries and reminders at minutes' offsets fall due while
    notification_svc is SIGKILLed and NATS restarted, over and over (tests/chaos/notices.py)."""
    bookings = int(os.environ.get("CLINIC_CHAOS_BOOKINGS", "2000"))
    report = await Chaos(
        tmp_path,
        bookings=max(40, bookings // 4),
        rate_per_s=25,
        kill_every_s=5.0,
        seed=31,
        faults=("notification_svc", "nats"),
        notices=max(20, bookings // 5),
    ).run()
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert (report.lost, report.doubled) == (0, 0)
    assert report.kills["notification_svc"] >= 3 and report.server_restarts["nats"] >= 3
    assert report.notices["due reminders"] > 0 and report.notices["moved"] > 0
    assert report.notices["webhook failed calls"] > 0  # the provider failed calls: they were retried
