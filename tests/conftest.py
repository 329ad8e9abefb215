"""Fixture chain: temp dir -> real nats-server and valkey on free ports -> the services -> a client."""

from __future__ import annotations

import os

import nats
import pytest

from clinic_common import nats_io
from tests.harness import Client, Servers, System, redis_client


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("servers")).start()
    yield servers
    servers.stop()


# `make test` runs the files in pytest-xdist workers, a whole file to a worker (--dist loadfile, so a
# file's module fixtures and its order stay as written), handed out in collection order
# (--no-loadscope-reorder). The files that take longest (seconds, measured) go first, so no worker is
# left alone with one of them at the end; the rest keep their order. A plain `pytest` run is unchanged.
LONGEST_FIRST = (
    "test_cli.py",  # the scenarios start throwaway systems
    "test_config_errors.py",  # ~100 service starts
    "test_waitlist.py",  # offers that run out
    "test_notifications.py",  # a reminder ~40 s after start; a killed sender's claim lapses (30 s)
    "test_nats_cluster.py",
    "test_durability.py",
    "test_frontdesk_page.py",
    "test_scaling.py",
    "test_chaos_short.py",
    "test_redis_sentinel.py",
    "test_frontdesk.py",
    "test_observability.py",
    "test_mtls.py",
    "test_money_durability.py",
    "test_launcher.py",
    "test_fuzz.py",
    "test_redis_cluster.py",
    "test_readme.py",
)


def pytest_collection_modifyitems(session, config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept


TEST_QUOTA = 20


@pytest.fixture(scope="session")
def system(servers):
    system = System(servers, env={"DAILY_DISCOUNT_QUOTA": str(TEST_QUOTA)}).start()
    yield system
    system.stop()


@pytest.fixture(scope="session")
async def client(system):
    client = Client(system.gateway_addr)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def redis(servers):
    r = await redis_client(servers)
    yield r
    await r.aclose()


@pytest.fixture
async def js(servers):
    """JetStream on the session's NATS, with the clinic's streams in place."""
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    await nats_io.ensure_streams(js)
    yield js
    await nc.close()
