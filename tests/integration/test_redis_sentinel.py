"""REDIS_URL=redis+sentinel://...: the quota store follows the primary Sentinel names."""

from __future__ import annotations

import subprocess

import pytest

from clinic_common import embedded, redis_io
from discount_svc.quota import QuotaStore
from tests.harness import wait_for


@pytest.fixture
def sentinel(tmp_path):
    primary, sentinel_port = embedded.free_port(), embedded.free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor clinic 127.0.0.1 {primary} 1\n"
        f"sentinel down-after-milliseconds clinic 2000\n"
    )
    binary = embedded.valkey_server_binary()
    procs = [
        subprocess.Popen(
            [binary, "--port", str(primary), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL),
    ]
    yield f"redis+sentinel://127.0.0.1:{sentinel_port}/clinic"
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_quota_scripts_through_sentinel(sentinel):
    client = redis_io.connect(sentinel)

    async def reachable():
        try:
            return await client.ping()
        except Exception:
            return False

    await wait_for(reachable, what="the primary through Sentinel")
    quota = QuotaStore(client, limit=1)
    assert await quota.grant("2026-11-22", "a") == "applied"
    assert await quota.grant("2026-11-22", "b") == "exhausted"
    assert await quota.release("2026-11-22", "a") == "released"
    await client.aclose()
