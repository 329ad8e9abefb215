"""Fixture chain: temp dir -> real nats-server and valkey on free ports -> the services -> a client."""

from __future__ import annotations

import pytest

from tests.harness import Client, Servers, System, redis_client


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("servers")).start()
    yield servers
    servers.stop()


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
