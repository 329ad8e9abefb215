"""REDIS_URL=redis+sentinel://...: the quota store follows the primary Sentinel names, across a
failover (the primary SIGKILLed, its replica promoted)."""

from __future__ import annotations

import subprocess

import pytest
import redis.asyncio as aioredis

from clinic_common import redis_io
from clinic_tools import embedded
from discount_svc.quota import QuotaStore
from tests.harness import wait_for


@pytest.fixture
def sentinel(tmp_path):
    """A primary, its replica and one Sentinel (quorum 1) on loopback."""
    primary, replica, sentinel_port = embedded.free_port(), embedded.free_port(), embedded.free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor clinic 127.0.0.1 {primary} 1\n"
        "sentinel down-after-milliseconds clinic 1000\nsentinel failover-timeout clinic 5000\n"
    )
    binary = embedded.valkey_server_binary()

    def server(port: int, *extra: str) -> subprocess.Popen:
        node_dir = tmp_path / str(port)
        node_dir.mkdir()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(node_dir)]
        return subprocess.Popen([*args, *extra], stdout=subprocess.DEVNULL)

    procs = {
        "primary": server(primary),
        "replica": server(replica, "--replicaof", "127.0.0.1", str(primary)),
        "sentinel": subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL),
    }
    yield f"redis+sentinel://127.0.0.1:{sentinel_port}/clinic", procs, (primary, replica, sentinel_port)
    for proc in procs.values():
        proc.kill()
        proc.wait()


async def _answers(call):
    try:
        return await call()
    except Exception:
        return None


async def test_quota_scripts_through_sentinel_and_across_a_failover(sentinel):
    url, procs, (primary, replica, sentinel_port) = sentinel
    client = redis_io.connect(url)
    quota = QuotaStore(client, limit=2)
    day = "2026-11-22"
    await wait_for(lambda: _answers(client.ping), what="the primary through Sentinel")
    assert await quota.grant(day, "a") == "applied"
    direct = aioredis.Redis(port=primary)
    try:  # the replica has the grant before the primary dies (replication is asynchronous)
        await wait_for(lambda: _answers(lambda: direct.wait(1, 100)), what="the replica to catch up")
    finally:
        await direct.aclose()

    # Sentinel learns of replicas from the primary's INFO, every 10 s: a failover before that has no
    # replica to promote. Wait until it knows this one, linked and up.
    watcher = aioredis.Redis(port=sentinel_port, decode_responses=True)

    async def replica_known() -> bool:
        replicas = await _answers(lambda: watcher.sentinel_slaves("clinic")) or []
        return any(
            int(r["port"]) == replica and r.get("master-link-status") == "ok" and not r.get("is_sdown")
            for r in replicas
        )

    try:
        await wait_for(replica_known, timeout_s=30, what="Sentinel to know the replica")
    finally:
        await watcher.aclose()
    procs["primary"].kill()
    procs["primary"].wait()

    async def granted_on_the_new_primary():
        return await _answers(lambda: quota.grant(day, "b"))

    after = await wait_for(granted_on_the_new_primary, timeout_s=30, what="a grant after the failover")
    assert after == "applied"
    assert await quota.grant(day, "c") == "exhausted"  # "a" survived the failover: 2 of 2 used
    assert await quota.release(day, "a") == "released"
    promoted = aioredis.Redis(port=replica)
    try:
        assert (await promoted.info("replication"))["role"] == "master"
    finally:
        await promoted.aclose()
    await client.aclose()
