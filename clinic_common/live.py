"""Watch live, in order: a stream's stored history, then what happens from now on, by sequence.

The one home of the machinery behind notification_svc's WatchBooking/WatchPatient and
frontdesk_svc's WatchQueue. Each service keeps only what is its own: the key a watcher listens on,
where the history or snapshot comes from, and when a stream ends.

The design, once:
- A hub holds one core NATS subscription per instance and hands each message to the local
  `Watcher`s registered under its key (`Watchers`); a watcher's buffer is bounded, and a watcher
  that falls behind is marked `overflowed` instead of blocking the others.
- The watcher is registered *before* the history (or snapshot) is read, and every item carries its
  key's sequence (1, 2, 3 ...), so the hand-over has no gap and no duplicate: items are released
  strictly in sequence order, anything already sent is dropped, and a hole (an item published late,
  or out of order by two instances) is filled by reading the stream again (`StreamHistory`) after
  `GAP_RECHECK_S` without the missing item.
- Shutdown (`Watchers.close`) ends every open stream cleanly; an overflowed watcher ends its
  stream with RESOURCE_EXHAUSTED (`WatcherTooSlow`), the client watches again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from clinic_common.errors import ResourceExhausted

WATCHER_BUFFER = 10_000
GAP_RECHECK_S = 1.0


class Sequenced(Protocol):
    sequence: int


T = TypeVar("T")
S = TypeVar("S", bound=Sequenced)


class WatcherTooSlow(ResourceExhausted):
    """The client reads slower than items arrive and its buffer filled up."""


class Watcher(Generic[T]):
    """A bounded queue of live items for one stream; `None` means the hub is closing."""

    def __init__(self, registry: Watchers[T], key: str, buffer: int = WATCHER_BUFFER) -> None:
        self.queue: asyncio.Queue[T | None] = asyncio.Queue(buffer)
        self.overflowed = False
        self.registry = registry
        self.key = key

    def offer(self, item: T | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    @property
    def closed(self) -> bool:
        return self.registry.closed


class Watchers(Generic[T]):
    """The local watchers of one kind of key (a booking, a patient, a queue)."""

    def __init__(self, buffer: int = WATCHER_BUFFER) -> None:
        self._by_key: dict[str, set[Watcher[T]]] = defaultdict(set)
        self._buffer = buffer
        self.closed = False

    def watch(self, key: str) -> Watcher[T]:
        watcher = Watcher(self, key, self._buffer)
        self._by_key[key].add(watcher)
        if self.closed:
            watcher.offer(None)
        return watcher

    def offer(self, key: str, item: T) -> None:
        for watcher in self._by_key.get(key, ()):
            watcher.offer(item)

    def listening(self, key: str | None = None) -> bool:
        """Anyone watching (`key`, or any key): lets a hub skip decoding what nobody reads."""
        return bool(self._by_key) if key is None else key in self._by_key

    def forget(self, watcher: Watcher[T]) -> None:
        watchers = self._by_key.get(watcher.key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._by_key[watcher.key]

    def __len__(self) -> int:
        return sum(len(ws) for ws in self._by_key.values())

    def close(self) -> None:
        """End every open stream cleanly (shutdown); a watcher registered later ends at once."""
        self.closed = True
        for watchers in self._by_key.values():
            for watcher in watchers:
                watcher.offer(None)


class StreamHistory(Generic[T]):
    """One subject filter's messages as stored in a stream, read by direct get (no consumer), each
    call returning what is new since the last."""

    def __init__(self, js: JetStreamContext, stream: str, subject: str, decode: Callable[[bytes], T]) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._decode = decode
        self._next_stream_seq = 1

    async def read_new(self) -> list[T]:
        items = []
        while True:
            try:
                raw = await self._js.get_msg(
                    self._stream, seq=self._next_stream_seq, subject=self._subject, next=True, direct=True
                )
            except NotFoundError:
                return items
            self._next_stream_seq = raw.seq + 1
            items.append(self._decode(raw.data))


class History(Protocol[S]):
    async def read_new(self) -> list[S]: ...


def _never(_item: object) -> bool:
    return False


async def in_sequence(
    watcher: Watcher[S],
    history: History[S],
    stored: Iterable[S],
    next_seq: int,
    *,
    done: Callable[[S], bool] = _never,
    slow: str = "watcher fell too far behind; watch again",
) -> AsyncIterator[S]:
    """`stored` (already read, after `watcher` was registered) from `next_seq` on, then live items,
    strictly by sequence. `done(item)` ends the stream after an item once the stored ones are out
    (or at once, when the last stored item is done and nothing waits)."""
    waiting: dict[int, S] = {}
    _keep(waiting, stored, next_seq)
    last: S | None = None
    caught_up = False  # the stored items are out; from here `done` may end the stream
    while True:
        while next_seq in waiting:
            last = waiting.pop(next_seq)
            next_seq += 1
            yield last
            if caught_up and done(last):
                return
        if not caught_up:
            caught_up = True
            if not waiting and last is not None and done(last):
                return
        item = await _next_live(watcher, GAP_RECHECK_S if waiting else None, slow)
        if item is None:
            if watcher.closed:
                return
            _keep(waiting, await history.read_new(), next_seq)  # a hole: look in the stream again
            continue
        _keep(waiting, [item], next_seq)


async def live_only(watcher: Watcher[T], *, slow: str = "watcher fell too far behind; watch again"):
    """Live items as they come, until the hub closes (no history, no order to restore)."""
    while True:
        item = await _next_live(watcher, None, slow)
        if item is None:
            return
        yield item


def _keep(waiting: dict[int, S], items: Iterable[S], next_seq: int) -> None:
    for item in items:
        if item.sequence >= next_seq:
            waiting[item.sequence] = item


async def _next_live(watcher: Watcher[T], wait_s: float | None, slow: str) -> T | None:
    """The next live item; None when the hub closes or a hole needs the stream read again."""
    if watcher.overflowed:
        raise WatcherTooSlow(slow)
    try:
        return await asyncio.wait_for(watcher.queue.get(), wait_s)
    except TimeoutError:
        return None
