"""The quota scripts on a Redis Cluster of three primaries (valkey in cluster mode, on loopback).

Every key a quota script touches carries the day's hash tag, so the scripts run on a cluster; this
test builds one (CLUSTER ADDSLOTS / MEET, no external tool) and runs grants and releases on it.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from clinic.v1.common_pb2 import Patient
from clinic.v1.doctor_pb2 import Doctor
from clinic.v1.frontdesk_pb2 import Visit
from clinic_tools import embedded
from discount_svc.quota import QuotaStore
from frontdesk_svc import domain
from frontdesk_svc.domain import QueueId
from frontdesk_svc.store import QueueStore, tag
from schedule_svc.places import PlacesStore, Request, hold_key
from schedule_svc.store import DoctorStore, RegistryStore
from tests.harness import wait_for

SLOTS = 16384


def spawn_node(tmp_path, attempt: int) -> tuple[int, int, subprocess.Popen, Path]:
    """One valkey server in cluster mode, with an explicit bus port (else port + 10000, which a
    high free port cannot have)."""
    port, bus = embedded.free_port(), embedded.free_port_below(55_000)
    node_dir = tmp_path / f"{port}-{attempt}"
    node_dir.mkdir()
    args = [
        embedded.valkey_server_binary(),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir), "--cluster-port", str(bus)),
        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", ""),
        *("--appendonly", "no", "--cluster-node-timeout", "2000", "--cluster-announce-ip", "127.0.0.1"),
    ]
    log_path = node_dir / "log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return port, bus, proc, log_path


async def start_node(tmp_path, procs: list[subprocess.Popen], attempts: int = 3) -> tuple[int, int]:
    """Start a node and wait until it answers; a free port taken in the meantime (the pick and the
    bind are not atomic) costs a retry on fresh ports, not the test."""
    failures = []
    for attempt in range(attempts):
        port, bus, proc, log_path = spawn_node(tmp_path, attempt)
        procs.append(proc)
        node = aioredis.Redis(port=port)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                if await _pings(node):
                    return port, bus
                await asyncio.sleep(0.05)
        finally:
            await node.aclose()
        proc.kill()
        proc.wait()
        failures.append(f"port {port} bus {bus}: {log_path.read_text(errors='replace')[-300:]}")
    raise AssertionError("a cluster node did not start:\n" + "\n".join(failures))


@pytest.fixture
async def cluster(tmp_path):
    procs: list[subprocess.Popen] = []
    nodes: list[aioredis.Redis] = []
    try:
        started = [await start_node(tmp_path, procs) for _ in range(3)]
        ports = [port for port, _ in started]
        nodes = [aioredis.Redis(port=p) for p in ports]
        for i, node in enumerate(nodes):
            start, end = i * SLOTS // 3, (i + 1) * SLOTS // 3
            await node.execute_command("CLUSTER ADDSLOTSRANGE", start, end - 1)
        for port, bus in started[1:]:
            await nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus)

        async def converged():
            infos = [await n.execute_command("CLUSTER INFO") for n in nodes]
            return all(info.get("cluster_state") == "ok" for info in infos)

        await wait_for(converged, timeout_s=30, what="cluster_state:ok")
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        await client.initialize()
        yield client
        await client.aclose()
    finally:
        for node in nodes:
            await node.aclose()
        for proc in procs:
            proc.kill()
            proc.wait()


async def _pings(node) -> bool:
    try:
        return await node.ping()
    except Exception:
        return False


async def test_quota_scripts_on_a_three_primary_cluster(cluster):
    quota = QuotaStore(cluster, limit=10)
    days = ["2026-11-22", "2026-11-23", "2026-12-31"]  # tags that land on different primaries
    slots = {RedisCluster.keyslot(cluster, f"{{quota:{d}}}:used") for d in days}
    assert len(slots) == 3

    for day in days:
        results = await asyncio.gather(*(quota.grant(day, f"b{i}") for i in range(25)))
        assert results.count("applied") == 10 and results.count("exhausted") == 15
        assert await asyncio.gather(*(quota.grant(day, f"b{i}") for i in range(25))) == results  # redelivery
        released = await asyncio.gather(*(quota.release(day, f"b{i}") for i in range(25)))
        assert released.count("released") == 10
        assert (await quota.state(day)).used == 0
        winner = f"b{results.index('applied')}"
        assert await quota.grant(day, winner) == "released"  # a finished booking never takes a unit again
        assert await quota.reconcile(day, repair=False) == (0, 0)


async def _waitlist_on_the_cluster(places: PlacesStore, day: str) -> None:
    """The waitlist scripts build the keys of the booking they offer to from the date's tag: still
    one slot, so they run on a cluster too."""
    one = Request("w-held", day, ["gen"], "d-2")
    assert (await places.reserve(one, [10], (1, 540, 1020))).state == "held"
    waiting = [Request(f"w-{i}", day, ["gen"], "d-2") for i in range(2)]
    outcomes = [await places.reserve(r, [10], (1, 540, 1020), waitlist=True) for r in waiting]
    assert [(o.state, o.position) for o in outcomes] == [("waiting", 1), ("waiting", 2)]
    assert await places.release_offering(one, 1_000, 5_000) == ("released", "w-0")
    # Nobody has been told of the offer yet: it does not run out (its time starts when it is published).
    assert await places.expire_offer(day, "w-0", 6_000, 5_000) == ("offered", "")
    told = await places.offer_to_announce(day, "w-0", 2_000, 5_000)  # published at 2 s: runs to 7 s
    assert (told.state, told.expires_ms) == ("offered", 7_000)
    await places.announced(day, "o:w-0")
    assert await places.expire_offer(day, "w-0", 6_000, 5_000) == ("offered", "")
    assert await places.expire_offer(day, "w-0", 7_000, 5_000) == ("expired", "w-1")
    assert await places.accept(day, "w-1", 7_000) == ("held", 1)
    assert await places.waitlisted(day, "d-2") == 0


async def test_place_and_registry_scripts_on_a_three_primary_cluster(cluster):
    """Every key a places script touches shares its date's tag, so a booking's places are reserved
    all or nothing on one primary; dates spread over the primaries. The registry and doctors too."""
    places = PlacesStore(cluster)
    days = ["2026-12-01", "2026-12-02", "2026-12-05"]
    slots = {RedisCluster.keyslot(cluster, hold_key(d, "x")) for d in days}
    assert len(slots) >= 2
    for day in days:
        asks = [
            Request(f"b{i}", day, ["gen", "ecg"], "d-1", 540 + 30 * (i % 4), 570 + 30 * (i % 4))
            for i in range(12)
        ]
        outcomes = await asyncio.gather(*(places.reserve(r, [10, 3], (5, 540, 1020)) for r in asks))
        held = [o for o in outcomes if o.state == "held"]
        assert len(held) == 3  # ecg has 3 places that day
        assert sorted(o.token for o in held) == [1, 2, 3]
        assert await asyncio.gather(*(places.reserve(r, [10, 3], (5, 540, 1020)) for r in asks)) == outcomes
        assert (
            sorted(await asyncio.gather(*(places.release(r) for r in asks)))
            == ["refused"] * 9 + ["released"] * 3
        )
        state = await places.day(day, "d-1")
        assert (state.tokens_held, state.intervals) == (0, [])
        await _waitlist_on_the_cluster(places, day)
        await places.set_day(day, "d-1", {"present": "0"})
        refused = await places.reserve(Request("late", day, ["gen"], "d-1"), [10], (5, 540, 1020))
        assert (refused.state, refused.reason) == ("refused", "doctor")
    registry = RegistryStore(cluster)
    first = await registry.register(Patient(id="p-1", name="A", phone="+919800000001", email="a@x.in"))
    second = await registry.register(Patient(id="p-2", name="B", phone="+919800000001"))
    assert first == (True, "p-1") and second == (False, "p-1")
    assert [p.id for p in await registry.by_email("a@x.in")] == ["p-1"]
    doctors = DoctorStore(cluster)
    assert await doctors.create(Doctor(id="d-1", code="DR-A", name="A")) == "d-1"
    assert await doctors.create(Doctor(id="d-2", code="dr-a", name="B")) == "d-1"  # codes ignore case


async def test_check_in_queue_scripts_on_a_three_primary_cluster(cluster):
    """A queue's keys share its `{queue:<doctor>:<date>}` tag: positions, moves and snapshots run
    on a cluster, queues spread over the primaries."""
    store = QueueStore(cluster)
    queues = [QueueId("", "2026-12-01"), QueueId("d-1", "2026-12-01"), QueueId("d-2", "2026-12-03")]
    assert len({RedisCluster.keyslot(cluster, f"{tag(q)}:visits") for q in queues}) >= 2
    for queue in queues:
        visits = [
            Visit(booking_id=f"b{i}", patient_id=f"p{i}", doctor_id=queue.doctor_id, date=queue.day)
            for i in range(12)
        ]
        done = await asyncio.gather(*(store.check_in(queue, v, f"op-{i}", 1) for i, v in enumerate(visits)))
        assert sorted(o.visit.position for o in done) == list(range(1, 13))
        called = await store.transition(queue, "", domain.CALL, "op-call", 2)
        assert (called.changed, called.visit.position) == (True, 1)
        sequence, shown = await store.snapshot(queue)
        assert (sequence, len(shown), len(await store.pending(tag(queue)))) == (13, 12, 13)
