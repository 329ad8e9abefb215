"""clinic_common.live: replay then live, by sequence, with hole refill, overflow and close.

The history is a list the test appends to (what the stream holds); the hub is the real Watchers
registry, fed by the test as a subscription would be.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from clinic_common import live


@dataclass(frozen=True)
class Item:
    sequence: int
    final: bool = False


class ListHistory:
    """What the stream holds; each read returns what is new since the last, as StreamHistory does."""

    def __init__(self, items: list[Item] | None = None) -> None:
        self.items = list(items or [])
        self._read = 0
        self.reads = 0

    async def read_new(self) -> list[Item]:
        self.reads += 1
        new, self._read = self.items[self._read :], len(self.items)
        return new


async def take(stream, n: int, timeout_s: float = 5.0) -> list[int]:
    async def go():
        return [(await anext(stream)).sequence for _ in range(n)]

    return await asyncio.wait_for(go(), timeout_s)


async def rest(stream, timeout_s: float = 5.0) -> list[int]:
    async def go():
        return [item.sequence async for item in stream]

    return await asyncio.wait_for(go(), timeout_s)


async def test_stored_then_live_without_gap_or_duplicate():
    hub = live.Watchers()
    watcher = hub.watch("k")
    history = ListHistory()
    stream = live.in_sequence(watcher, history, [Item(1), Item(2), Item(3)], 1)
    hub.offer("k", Item(2))  # heard live while the history was read: a duplicate to drop
    hub.offer("k", Item(3))
    hub.offer("k", Item(4))
    hub.offer("other", Item(5))  # another key's watcher hears it, not this one
    assert await take(stream, 4) == [1, 2, 3, 4]
    hub.close()
    assert await rest(stream) == []


async def test_items_before_next_seq_are_dropped_and_out_of_order_live_is_reordered():
    hub = live.Watchers()
    watcher = hub.watch("k")
    stream = live.in_sequence(watcher, ListHistory(), [Item(4), Item(5)], 5)
    hub.offer("k", Item(7))
    hub.offer("k", Item(6))
    assert await take(stream, 3) == [5, 6, 7]
    hub.close()
    assert await rest(stream) == []


async def test_a_hole_is_filled_from_the_stream(monkeypatch):
    monkeypatch.setattr(live, "GAP_RECHECK_S", 0.05)
    hub = live.Watchers()
    watcher = hub.watch("k")
    history = ListHistory([Item(1)])
    stream = live.in_sequence(watcher, history, await history.read_new(), 1)
    assert await take(stream, 1) == [1]
    history.items += [Item(2), Item(3)]  # 2 reached the stream, but its live copy was never heard
    hub.offer("k", Item(3))
    assert await take(stream, 2) == [2, 3]
    assert history.reads >= 2
    hub.close()
    assert await rest(stream) == []


async def test_no_hole_no_rereading():
    hub = live.Watchers()
    watcher = hub.watch("k")
    history = ListHistory()
    stream = live.in_sequence(watcher, history, [Item(1)], 1)
    assert await take(stream, 1) == [1]
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(live.GAP_RECHECK_S + 0.2)  # waiting with nothing missing: no timed re-read
    assert not task.done() and history.reads == 0
    hub.offer("k", Item(2))
    assert (await asyncio.wait_for(task, 5)).sequence == 2


async def test_done_ends_after_the_final_live_item():
    hub = live.Watchers()
    watcher = hub.watch("k")
    stream = live.in_sequence(watcher, ListHistory(), [Item(1)], 1, done=lambda item: item.final)
    hub.offer("k", Item(2, final=True))
    hub.offer("k", Item(3))
    assert await rest(stream) == [1, 2]


async def test_done_ends_a_replay_that_is_already_final_but_waits_for_what_is_missing(monkeypatch):
    hub = live.Watchers()
    ended = live.in_sequence(
        hub.watch("a"), ListHistory(), [Item(1), Item(2, final=True)], 1, done=lambda i: i.final
    )
    assert await rest(ended) == [1, 2]
    # a final item replayed while an earlier one is still missing is not the end: wait for the rest
    monkeypatch.setattr(live, "GAP_RECHECK_S", 0.05)
    history = ListHistory()
    waiting = live.in_sequence(
        hub.watch("b"), history, [Item(1), Item(3, final=True)], 1, done=lambda i: i.final
    )
    assert await take(waiting, 1) == [1]
    history.items.append(Item(2))
    assert await rest(waiting) == [2, 3]


async def test_overflow_ends_the_stream_too_slow_and_spares_the_others():
    hub = live.Watchers(buffer=2)
    slow, fine = hub.watch("k"), hub.watch("k")
    stream = live.in_sequence(slow, ListHistory(), [], 1, slow="too slow: watch again")
    for seq in (1, 2, 3):
        hub.offer("k", Item(seq))
    assert slow.overflowed and fine.overflowed  # both buffers are 2: both behind
    other = hub.watch("j")
    hub.offer("j", Item(1))
    assert not other.overflowed
    with pytest.raises(live.WatcherTooSlow, match="too slow: watch again"):
        await take(stream, 1)


async def test_close_ends_open_streams_and_later_ones_at_once():
    hub = live.Watchers()
    watcher = hub.watch("k")
    stream = live.live_only(watcher)
    task = asyncio.ensure_future(rest(stream))
    hub.offer("k", Item(1))
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(task, 5) == [1]
    late = hub.watch("k")
    assert await rest(live.in_sequence(late, ListHistory(), [], 1)) == []


def test_forget_removes_a_watcher_and_its_key():
    hub = live.Watchers()
    a, b = hub.watch("k"), hub.watch("k")
    assert len(hub) == 2 and hub.listening("k") and hub.listening()
    hub.forget(a)
    assert len(hub) == 1 and hub.listening("k")
    hub.forget(b)
    hub.forget(b)  # twice is harmless
    assert len(hub) == 0 and not hub.listening("k") and not hub.listening()
