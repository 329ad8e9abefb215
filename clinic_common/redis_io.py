"""Redis (asyncio) clients that wait for a connection instead of failing, and retry briefly."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

# The errors that mean "Redis is down or restarting": callers answer UNAVAILABLE or retry later.
TRANSIENT_REDIS_ERRORS = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A client on a BlockingConnectionPool (waits for a free connection rather than raising).

    Retries are few and short so a dead Redis turns into UNAVAILABLE quickly; every Lua script is
    idempotent, so a retried script cannot double an effect.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
    )
    return aioredis.Redis(connection_pool=pool)
