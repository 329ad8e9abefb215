"""Script calls share one held connection, one batch on it at a time (clinic_common.redis_io),
against the real valkey server: the calls of one tick go as one write, results as one call each,
errors stay with their own call, a script flushed from the server's cache is loaded again, and a
connection killed under the batcher is reconnected with the batch sent again."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ResponseError

from clinic_common import redis_io
from clinic_common.redis_io import ScriptBatcher

_INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
# INCR after ARGV[1] empty loop turns (a batch that stays out while others are called; a script's
# clock is frozen, so it cannot wait on TIME).
_SLOW_INCR = """
local n = 0
for i = 1, tonumber(ARGV[1]) do n = n + 1 end
return redis.call('INCR', KEYS[1])
"""
_FAIL_ON_NEGATIVE = """
if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative: ' .. ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


async def test_calls_in_one_tick_go_out_as_one_pipeline(redis):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    prefix = f"test:batch:{uuid.uuid4().hex}"
    keys = [f"{prefix}:{i % 5}" for i in range(50)]
    await incr(keys=[f"{prefix}:warm"], args=[1])  # alone: refused (NOSCRIPT), loaded, sent again
    assert batcher.exchanges == 2

    results = await asyncio.gather(*(incr(keys=[k], args=[1]) for k in keys))

    assert batcher.exchanges == 3  # the 50 in one write
    # Every call ran once, in order per key: key i%5 saw 1, 2, ... 10.
    assert sorted(results) == sorted(n for _ in range(5) for n in range(1, 11))
    for k in set(keys):
        assert int(await redis.get(k)) == 10


async def test_an_error_stays_with_its_own_call(redis):
    batcher = ScriptBatcher(redis)
    script = batcher.register_script(_FAIL_ON_NEGATIVE)
    key = f"test:batch:{uuid.uuid4().hex}"
    assert await script(keys=[key], args=[0]) == 0  # loads it: the batch below runs at once
    before = batcher.exchanges

    async def outcome(n: int) -> tuple[str, object]:
        try:
            return "ok", await script(keys=[key], args=[n])
        except ResponseError as exc:  # raised to its own caller, not handed back as a value
            return "raised", str(exc)

    outcomes = await asyncio.gather(*(outcome(n) for n in (1, -1, 2, -2, 3)))

    assert [o[0] for o in outcomes] == ["ok", "raised", "ok", "raised", "ok"]
    assert [outcomes[0][1], outcomes[2][1], outcomes[4][1]] == [1, 3, 6]
    assert "negative: -1" in outcomes[1][1] and "negative: -2" in outcomes[3][1]
    assert batcher.exchanges == before + 1
    assert int(await redis.get(key)) == 6


async def test_a_script_flushed_from_the_server_cache_is_loaded_again(redis):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    key = f"test:batch:{uuid.uuid4().hex}"
    assert await incr(keys=[key], args=[1]) == 1  # loads it
    await redis.script_flush()
    before = batcher.exchanges

    results = await asyncio.gather(*(incr(keys=[key], args=[1]) for _ in range(10)))

    assert sorted(results) == list(range(2, 12))
    assert batcher.exchanges == before + 2  # refused with NOSCRIPT, loaded once, sent again as one
    assert int(await redis.get(key)) == 11


@pytest.mark.parametrize("callers", [1, 300])
async def test_lone_and_oversized_batches(redis, callers):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    key = f"test:batch:{uuid.uuid4().hex}"

    await incr(keys=[f"{key}:warm"], args=[1])  # loads it
    before = batcher.exchanges

    results = await asyncio.gather(*(incr(keys=[key], args=[1]) for _ in range(callers)))

    assert sorted(results) == list(range(1, callers + 1))
    # One call alone is one write; 300 split at MAX_BATCH (256) into two.
    assert batcher.exchanges - before == (1 if callers == 1 else 2)


async def test_calls_made_while_a_batch_is_out_go_together_next(redis):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    slow = batcher.register_script(_SLOW_INCR)
    key = f"test:batch:{uuid.uuid4().hex}"
    await incr(keys=[f"{key}:warm"], args=[1])
    await slow(keys=[f"{key}:warm"], args=[0])
    before = batcher.exchanges
    first = asyncio.ensure_future(slow(keys=[key], args=[5_000_000]))  # tens of ms on the server
    for _ in range(10):  # its task, the batcher's start, the drain: sent, its reply awaited
        await asyncio.sleep(0)
    assert batcher._draining and not batcher._pending and not first.done()
    later = []
    for _ in range(4):  # over four ticks
        later += [asyncio.ensure_future(incr(keys=[key], args=[1])) for _ in range(5)]
        await asyncio.sleep(0)
    results = await asyncio.gather(first, *later)
    assert results[0] == 1 and sorted(results[1:]) == list(range(2, 22))  # in the order sent
    assert batcher.exchanges - before == 2  # the slow one, then the twenty of four ticks in one write


async def test_a_connection_killed_under_the_batcher_is_reconnected_and_the_batch_sent_again(redis, servers):
    client = redis_io.connect(servers.redis_url)  # the services' client: its retry settings
    batcher = ScriptBatcher(client)
    incr = batcher.register_script(_INCR_BY)
    key = f"test:batch:{uuid.uuid4().hex}"
    assert await incr(keys=[key], args=[1]) == 1
    name = f"batcher-{uuid.uuid4().hex[:8]}"
    held = batcher._conn
    await held.send_command("CLIENT", "SETNAME", name)
    assert await held.read_response() == b"OK"
    clients = await redis.client_list()
    victim = next(c for c in clients if c.get("name") == name)
    await redis.client_kill_filter(_id=victim["id"])

    results = await asyncio.gather(*(incr(keys=[key], args=[1]) for _ in range(10)))

    assert sorted(results) == list(range(2, 12))  # every call once, none lost, none doubled
    assert int(await redis.get(key)) == 11
    assert name not in {c.get("name") for c in await redis.client_list()}  # a new connection
    await client.aclose()
