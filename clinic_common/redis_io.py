"""Redis (asyncio) clients that wait for a connection instead of failing, and retry briefly."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, NoScriptError, ResponseError, TimeoutError

# The errors that mean "Redis is down or restarting": callers answer UNAVAILABLE or retry later.
TRANSIENT_REDIS_ERRORS = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


def key_family(prefix: str, suffix: str = "") -> Callable[[str], str]:
    """The names of one family of keys: `key_family("bookings:date")("2026-01-02")` is
    "bookings:date:2026-01-02"; with `suffix` (":rev") that follows the name."""

    def key(name: str) -> str:
        return f"{prefix}:{name}{suffix}"

    return key


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


class BatchedScript:
    """A Lua script whose calls share the client's script connection (see ScriptBatcher): what is
    called while one batch is on the wire goes out next as one write, its replies read in order.

    Same call shape as redis-py's `Script` (`await script(keys=[...], args=[...])`). On Redis
    Cluster every call is a plain EVALSHA through the cluster client (keys of one batch may live on
    different nodes). Scripts stay idempotent per booking, so a batch sent again after a dropped
    connection cannot double an effect, exactly as for a single retried call.
    """

    def __init__(self, batcher: ScriptBatcher, lua: str) -> None:
        self._batcher = batcher
        self.script = batcher.redis.register_script(lua)

    async def __call__(self, keys: list | None = None, args: list | None = None):
        return await self._batcher.run(self.script, keys or [], args or [])


class ScriptBatcher:
    """One connection of the client's pool, held for its script calls, with one batch on it at a
    time: the calls of one loop tick, and then whatever was called while a batch was out, go as one
    EVALSHA pipeline (one write; the replies read in order). redis-py's own path costs a pool
    checkout, its retry wrapper and a Pipeline object per call or batch (about 30 us of CPU a call
    more, measured alone); the held connection keeps the pool's settings (ACL user, timeouts,
    health check, Sentinel's master lookup) and its retry: a dropped connection is reconnected and
    the batch sent again."""

    MAX_BATCH = 256

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[object, list, list, asyncio.Future]] = []
        self._draining = False
        self._conn = None
        self._tasks: set[asyncio.Task] = set()
        self._direct = isinstance(redis, aioredis.RedisCluster)
        self.exchanges = 0  # batches written and answered (tests and metrics read it)

    def register_script(self, lua: str) -> BatchedScript:
        return BatchedScript(self, lua)

    async def run(self, script, keys: list, args: list):
        if self._direct:
            return await script(keys=keys, args=args)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._draining:
            self._draining = True
            loop.call_soon(self._start)  # the rest of this tick's calls join the first batch
        return await future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        batch: list = []
        try:
            while self._pending:
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                await self._send(batch)
        except BaseException:  # cancelled (the loop is closing): nobody is left waiting forever
            _fail(batch + self._pending, ConnectionError("script batcher stopped"))
            self._pending = []
            raise
        finally:
            self._draining = False

    async def _send(
        self, batch: list[tuple[object, list, list, asyncio.Future]], reloaded: bool = False
    ) -> None:
        try:
            if self._conn is None:
                self._conn = await self.redis.connection_pool.get_connection()
            conn = self._conn
            results = await conn.retry.call_with_retry(
                lambda: self._exchange(conn, batch), lambda _error: conn.disconnect()
            )
        except Exception as exc:  # the connection failed, retries too: every call of the batch with it
            _fail(batch, exc)
            return
        unknown = []  # scripts not in the server's cache (new server, or flushed): load, send again
        for call, result in zip(batch, results, strict=True):
            future = call[3]
            if isinstance(result, NoScriptError) and not reloaded:
                unknown.append(call)
            elif future.done():
                continue  # its caller gave up (cancelled)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        if unknown:
            try:
                for script in {id(call[0]): call[0] for call in unknown}.values():
                    script.sha = await self.redis.script_load(script.script)
            except Exception as exc:
                _fail(unknown, exc)
                return
            await self._send(unknown, reloaded=True)

    async def _exchange(self, conn, batch: list[tuple[object, list, list, asyncio.Future]]) -> list:
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args, _ in batch]
        results: list = []
        try:
            if not conn.is_connected:  # its own connect(): Sentinel's asks for the primary again
                await conn.connect()
            await conn.send_packed_command(conn.pack_commands(commands))
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as exc:  # an error reply: that call's own, the rest go on
                    results.append(exc)
        except BaseException:
            await conn.disconnect(nowait=True)  # replies may be left unread: never reuse it as it is
            raise
        self.exchanges += 1
        return results


def _fail(calls: list[tuple[object, list, list, asyncio.Future]], exc: Exception) -> None:
    for *_, future in calls:
        if not future.done():  # its caller may have given up (cancelled)
            future.set_exception(exc)


_BATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def batched_script(redis: aioredis.Redis, lua: str) -> BatchedScript:
    """`redis.register_script(lua)`, batched per event-loop tick with the client's other scripts."""
    batcher = _BATCHERS.get(redis)
    if batcher is None:
        batcher = _BATCHERS[redis] = ScriptBatcher(redis)
    return batcher.register_script(lua)
