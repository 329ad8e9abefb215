"""Live fan-out: one core NATS subscription on every queue change, routed to local watchers.

However many screens and phones watch a queue, an instance holds one subscription (`visits.>`);
the durable history is the VISITS stream, this hub only carries what happens from now on. The
watcher machinery is clinic_common.live; what is this service's own: the key (a queue: its doctor
and day, read from the subject).
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from clinic.v1 import frontdesk_pb2
from clinic_common import subjects
from clinic_common.live import Watcher, Watchers
from clinic_common.logs import get_logger

log = get_logger(__name__)


def hub_key(doctor_id: str, day: str) -> str:
    return f"{subjects.queue_token(doctor_id)}.{day}"


class QueueHub:
    def __init__(self) -> None:
        self._watchers: Watchers[frontdesk_pb2.QueueChange] = Watchers()
        self._sub = None

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(subjects.VISITS_SUBJECTS, cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        key = ".".join(msg.subject.split(".")[1:3])  # visits.<doctor|general>.<date>.<booking_id>
        if not self._watchers.listening(key):
            return
        try:
            change = frontdesk_pb2.QueueChange.FromString(msg.data)
        except Exception:
            log.warning("hub.undecodable_change", subject=msg.subject)
            return
        self._watchers.offer(key, change)

    def watch(self, doctor_id: str, day: str) -> Watcher[frontdesk_pb2.QueueChange]:
        return self._watchers.watch(hub_key(doctor_id, day))

    def forget(self, watcher: Watcher) -> None:
        self._watchers.forget(watcher)

    @property
    def closed(self) -> bool:
        return self._watchers.closed

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def close(self) -> None:
        """End every open stream cleanly (shutdown)."""
        self._watchers.close()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
