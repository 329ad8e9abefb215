"""frontdesk_svc on the bus: the outbox relay into VISITS, and reading a queue's changes back.

A change is published with Nats-Msg-Id `visits:<queue tag>:<sequence>`, so the relay running it again
(after a crash, or on two instances at once) never puts it in the stream twice within the
duplicate window, and watchers drop any older repeat by its sequence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext

from clinic.v1 import frontdesk_pb2
from clinic_common import live, subjects
from clinic_common.logs import get_logger

from .domain import QueueId
from .store import QueueStore

log = get_logger(__name__)

Publish = Callable[[str, bytes, str], Awaitable[None]]  # subject, payload, msg id


def change_subject(change: frontdesk_pb2.QueueChange) -> str:
    visit = change.visit
    return subjects.visit_subject(visit.doctor_id, visit.date, visit.booking_id)


class Relay:
    """Publishes what the store's outboxes hold: right after each change, and in a sweep."""

    def __init__(self, store: QueueStore, publish: Publish) -> None:
        self._store = store
        self._publish = publish

    async def flush(self, queue_tag: str, sequence: int = 0) -> None:
        """Publish change `sequence` of the queue (0: everything its outbox holds)."""
        if sequence:
            one = await self._store.pending_one(queue_tag, sequence)
            changes = [one] if one else []
        else:
            changes = await self._store.pending(queue_tag)
        for change in changes:
            await self._publish(
                change_subject(change), change.SerializeToString(), f"visits:{queue_tag}:{change.sequence}"
            )
            await self._store.published(queue_tag, change.sequence)

    async def sweep(self) -> None:
        """Everything a crash (or NATS being away) left behind; bootstrap.every runs it."""
        for queue_tag in await self._store.outbox_queues():
            await self.flush(queue_tag)
            await self._store.forget_if_empty(queue_tag)


class QueueHistory(live.StreamHistory[frontdesk_pb2.QueueChange]):
    """One queue's changes as stored in VISITS."""

    def __init__(self, js: JetStreamContext, queue: QueueId) -> None:
        super().__init__(
            js,
            subjects.VISITS_STREAM,
            subjects.queue_subjects(queue.doctor_id, queue.day),
            frontdesk_pb2.QueueChange.FromString,
        )
