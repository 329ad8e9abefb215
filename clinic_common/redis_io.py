"""Redis (asyncio) clients that wait for a connection instead of failing, and retry briefly."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

# The errors that mean "Redis is down or restarting": callers answer UNAVAILABLE or retry later.
TRANSIENT_REDIS_ERRORS = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A client for REDIS_URL: redis:// (one server), redis+sentinel:// or redis+cluster://.

    - `redis+sentinel://[user:pass@]host:port[,host:port...]/<master name>[/db]`: the current
      primary, found through Sentinel (followed across a failover).
    - `redis+cluster://[user:pass@]host:port`: Redis Cluster. Only the quota scripts keep their
      keys in one hash slot; booking_svc's and notification_svc's scripts span several key
      prefixes, so those services need a single primary (plain or Sentinel).

    Plain servers use a BlockingConnectionPool (waits for a free connection rather than raising).
    Retries are few and short so a dead Redis turns into UNAVAILABLE quickly; every Lua script is
    idempotent, so a retried script cannot double an effect.
    """
    if url.startswith("redis+sentinel://"):
        return _sentinel(url, max_connections)
    if url.startswith("redis+cluster://"):
        return aioredis.RedisCluster.from_url(
            "redis://" + url.removeprefix("redis+cluster://"),
            max_connections=max_connections,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
        )
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


def _sentinel(url: str, max_connections: int) -> aioredis.Redis:
    from urllib.parse import unquote, urlsplit

    from redis.asyncio.sentinel import Sentinel

    parts = urlsplit("redis://" + url.removeprefix("redis+sentinel://"))
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("redis+sentinel:// needs the master name: redis+sentinel://host:port/mymaster")
    nodes = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts.split(",")]
    auth = {"username": unquote(username) or None, "password": unquote(password) or None}
    sentinel = Sentinel(nodes, socket_timeout=1.0, sentinel_kwargs={"socket_timeout": 1.0})
    return sentinel.master_for(
        path[0],
        db=int(path[1]) if len(path) > 1 else 0,
        socket_timeout=5.0,
        max_connections=max_connections,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        **auth,
    )
