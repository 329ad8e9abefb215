"""The quota scripts on a Redis Cluster of three primaries (valkey in cluster mode, on loopback).

Every key a quota script touches carries the day's hash tag, so the scripts run on a cluster; this
test builds one (CLUSTER ADDSLOTS / MEET, no external tool) and runs grants and releases on it.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from clinic_common import embedded
from discount_svc.quota import QuotaStore
from tests.harness import wait_for

SLOTS = 16384


def spawn_nodes(tmp_path) -> tuple[list[int], list[int], list[subprocess.Popen]]:
    """Three valkey servers in cluster mode, each with an explicit bus port (else port + 10000,
    which a high free port cannot have)."""
    ports = [embedded.free_port() for _ in range(3)]
    bus_ports = [embedded.free_port_below(55_000) for _ in range(3)]
    procs = []
    for port, bus in zip(ports, bus_ports, strict=True):
        node_dir = tmp_path / str(port)
        node_dir.mkdir()
        args = [
            embedded.valkey_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir), "--cluster-port", str(bus)),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", ""),
            *("--appendonly", "no", "--cluster-node-timeout", "2000", "--cluster-announce-ip", "127.0.0.1"),
        ]
        with open(node_dir / "log", "wb") as log:
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    return ports, bus_ports, procs


@pytest.fixture
async def cluster(tmp_path):
    ports, bus_ports, procs = spawn_nodes(tmp_path)
    nodes = [aioredis.Redis(port=p) for p in ports]
    try:
        for i, node in enumerate(nodes):
            await wait_for(
                lambda node=node: _pings(node),
                what=f"node {i} up: {(tmp_path / str(ports[i]) / 'log').read_text(errors='replace')[-500:]}",
            )
            start, end = i * SLOTS // 3, (i + 1) * SLOTS // 3
            await node.execute_command("CLUSTER ADDSLOTSRANGE", start, end - 1)
        for port, bus in zip(ports[1:], bus_ports[1:], strict=True):
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
