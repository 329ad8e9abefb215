"""Script calls made in one event-loop tick share one pipeline (clinic_common.redis_io), against the
real valkey server: same results as one call each, errors stay with their own call, and a script
flushed from the server's cache is loaded again."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.exceptions import ResponseError

from clinic_common.redis_io import ScriptBatcher

_INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
_FAIL_ON_NEGATIVE = """
if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative: ' .. ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


async def test_calls_in_one_tick_go_out_as_one_pipeline(redis):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    prefix = f"test:batch:{uuid.uuid4().hex}"
    keys = [f"{prefix}:{i % 5}" for i in range(50)]
    await incr(keys=[f"{prefix}:warm"], args=[1])  # alone: a plain EVALSHA that loads the script

    results = await asyncio.gather(*(incr(keys=[k], args=[1]) for k in keys))

    assert batcher.pipelines == 1
    # Every call ran once, in order per key: key i%5 saw 1, 2, ... 10.
    assert sorted(results) == sorted(n for _ in range(5) for n in range(1, 11))
    for k in set(keys):
        assert int(await redis.get(k)) == 10


async def test_an_error_stays_with_its_own_call(redis):
    batcher = ScriptBatcher(redis)
    script = batcher.register_script(_FAIL_ON_NEGATIVE)
    key = f"test:batch:{uuid.uuid4().hex}"
    assert await script(keys=[key], args=[0]) == 0  # in the server's cache: the batch runs as a pipeline

    async def outcome(n: int) -> tuple[str, object]:
        try:
            return "ok", await script(keys=[key], args=[n])
        except ResponseError as exc:  # raised to its own caller, not handed back as a value
            return "raised", str(exc)

    outcomes = await asyncio.gather(*(outcome(n) for n in (1, -1, 2, -2, 3)))

    assert [o[0] for o in outcomes] == ["ok", "raised", "ok", "raised", "ok"]
    assert [outcomes[0][1], outcomes[2][1], outcomes[4][1]] == [1, 3, 6]
    assert "negative: -1" in outcomes[1][1] and "negative: -2" in outcomes[3][1]
    assert batcher.pipelines == 1
    assert int(await redis.get(key)) == 6


async def test_a_script_flushed_from_the_server_cache_is_loaded_again(redis):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    key = f"test:batch:{uuid.uuid4().hex}"
    assert await incr(keys=[key], args=[1]) == 1  # loads it
    await redis.script_flush()

    results = await asyncio.gather(*(incr(keys=[key], args=[1]) for _ in range(10)))

    assert sorted(results) == list(range(2, 12))
    assert batcher.pipelines == 2  # refused with NOSCRIPT, loaded once, sent again as one pipeline
    assert int(await redis.get(key)) == 11


@pytest.mark.parametrize("callers", [1, 300])
async def test_lone_and_oversized_batches(redis, callers):
    batcher = ScriptBatcher(redis)
    incr = batcher.register_script(_INCR_BY)
    key = f"test:batch:{uuid.uuid4().hex}"

    results = await asyncio.gather(*(incr(keys=[key], args=[1]) for _ in range(callers)))

    assert sorted(results) == list(range(1, callers + 1))
    # One call alone is a plain EVALSHA; 300 split at MAX_BATCH (256) into two pipelines.
    assert batcher.pipelines == (0 if callers == 1 else 2)
