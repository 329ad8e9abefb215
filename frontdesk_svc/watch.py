"""WatchQueue's stream: a snapshot (or a replay from the stream), then live changes, by sequence.

The replay-then-live machinery (no gap, no duplicate, holes filled from VISITS) is
clinic_common.live; what is this service's own: the key (the queue), the snapshot it starts from
(or the changes after the caller's `after_sequence`), and no stop rule (a queue is watched until the
caller leaves or the service stops).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from clinic.v1 import frontdesk_pb2
from clinic_common import live
from clinic_common.live import WatcherTooSlow

from .domain import QueueId
from .events import QueueHistory
from .hub import QueueHub

__all__ = ["Snapshot", "WatcherTooSlow", "watch_queue"]

Snapshot = Callable[[], Awaitable[tuple[int, list[frontdesk_pb2.Visit]]]]
SLOW = "watcher fell too far behind; watch again with after_sequence"


async def watch_queue(
    hub: QueueHub, history: QueueHistory, queue: QueueId, after_sequence: int, snapshot: Snapshot
) -> AsyncIterator[frontdesk_pb2.QueueSnapshot | frontdesk_pb2.QueueChange]:
    watcher = hub.watch(queue.doctor_id, queue.day)
    try:
        if after_sequence > 0:
            next_seq, stored = after_sequence + 1, await history.read_new()
        else:
            sequence, visits = await snapshot()
            yield frontdesk_pb2.QueueSnapshot(visits=visits, sequence=sequence)
            next_seq, stored = sequence + 1, []
        async for change in live.in_sequence(watcher, history, stored, next_seq, slow=SLOW):
            yield change
    finally:
        hub.forget(watcher)
