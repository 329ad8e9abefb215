"""Live fan-out: one core NATS subscription on every queue change, routed to local watchers.

However many screens and phones watch a queue, an instance holds one subscription (`visits.>`);
the durable history is the VISITS stream, this hub only carries what happens from now on.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clinic.v1 import frontdesk_pb2
from clinic_common import subjects
from clinic_common.logs import get_logger

log = get_logger(__name__)

WATCHER_BUFFER = 10_000


class Watcher:
    """Live changes of one queue for one stream; `None` means the hub is closing."""

    def __init__(self, key: str) -> None:
        self.queue: asyncio.Queue[frontdesk_pb2.QueueChange | None] = asyncio.Queue(WATCHER_BUFFER)
        self.overflowed = False
        self.key = key

    def offer(self, change: frontdesk_pb2.QueueChange | None) -> None:
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True


def hub_key(doctor_id: str, day: str) -> str:
    return f"{subjects.queue_token(doctor_id)}.{day}"


class QueueHub:
    def __init__(self) -> None:
        self._watchers: dict[str, set[Watcher]] = defaultdict(set)
        self._sub = None
        self.closed = False

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(subjects.VISITS_SUBJECTS, cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        parts = msg.subject.split(".")  # visits.<doctor|general>.<date>.<booking_id>
        watchers = self._watchers.get(".".join(parts[1:3]))
        if not watchers:
            return
        try:
            change = frontdesk_pb2.QueueChange.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_change", subject=msg.subject)
            return
        for watcher in watchers:
            watcher.offer(change)

    def watch(self, doctor_id: str, day: str) -> Watcher:
        watcher = Watcher(hub_key(doctor_id, day))
        self._watchers[watcher.key].add(watcher)
        if self.closed:
            watcher.offer(None)
        return watcher

    def forget(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.key]

    @property
    def watchers(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    def close(self) -> None:
        """End every open stream cleanly (shutdown)."""
        self.closed = True
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.offer(None)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
