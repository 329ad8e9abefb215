"""WatchQueue's stream: a snapshot (or a replay from the stream), then live changes, by sequence.

The live listener is registered before the snapshot is read, and every change carries its queue's
sequence (1, 2, 3 ...), so the hand-over has no gap and no duplicate: changes up to the snapshot's
sequence are dropped, the rest are released strictly in order, and a hole (a change published late,
or out of order by two instances) is filled by reading the VISITS stream again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from clinic.v1 import frontdesk_pb2
from clinic_common.errors import ResourceExhausted

from .domain import QueueId
from .events import QueueHistory
from .hub import QueueHub, Watcher

GAP_RECHECK_S = 1.0

Snapshot = Callable[[], Awaitable[tuple[int, list[frontdesk_pb2.Visit]]]]


class WatcherTooSlow(ResourceExhausted):
    """The client reads slower than changes arrive and its buffer filled up."""


async def watch_queue(
    hub: QueueHub, history: QueueHistory, queue: QueueId, after_sequence: int, snapshot: Snapshot
) -> AsyncIterator[frontdesk_pb2.QueueSnapshot | frontdesk_pb2.QueueChange]:
    watcher = hub.watch(queue.doctor_id, queue.day)
    try:
        waiting: dict[int, frontdesk_pb2.QueueChange] = {}
        if after_sequence > 0:
            next_seq = after_sequence + 1
            _keep(waiting, await history.read_new(), next_seq)
        else:
            sequence, visits = await snapshot()
            yield frontdesk_pb2.QueueSnapshot(visits=visits, sequence=sequence)
            next_seq = sequence + 1
        while True:
            while next_seq in waiting:
                yield waiting.pop(next_seq)
                next_seq += 1
            change = await _next_live(watcher, bool(waiting))
            if change is None:
                if hub.closed:
                    return
                _keep(waiting, await history.read_new(), next_seq)  # a hole: look in the stream
                continue
            _keep(waiting, [change], next_seq)
    finally:
        hub.forget(watcher)


def _keep(
    waiting: dict[int, frontdesk_pb2.QueueChange], changes: list[frontdesk_pb2.QueueChange], next_seq: int
) -> None:
    for change in changes:
        if change.sequence >= next_seq:
            waiting[change.sequence] = change


async def _next_live(watcher: Watcher, hole: bool) -> frontdesk_pb2.QueueChange | None:
    """The next live change; None when the hub closes or a hole needs the stream read again."""
    if watcher.overflowed:
        raise WatcherTooSlow("watcher fell too far behind; watch again with after_sequence")
    try:
        return await asyncio.wait_for(watcher.queue.get(), GAP_RECHECK_S if hole else None)
    except TimeoutError:
        return None
