"""Evidence that a refused call left nothing behind: no Redis key, no JetStream message naming it."""

from __future__ import annotations

from dataclasses import dataclass, field

import nats
import redis.asyncio as aioredis

from clinic_common import subjects

STREAMS = (subjects.EVENTS_STREAM, subjects.SAGA_STREAM)


@dataclass
class Footprint:
    """Take `start()` before the calls under test, then `assert_untouched(marks)` after them."""

    redis: aioredis.Redis
    nats_url: str
    last_seq: dict[str, int] = field(default_factory=dict)

    async def _last(self, js) -> dict[str, int]:
        return {s: (await js.stream_info(s)).state.last_seq for s in STREAMS}

    async def start(self) -> Footprint:
        nc = await nats.connect(self.nats_url)
        try:
            self.last_seq = await self._last(nc.jetstream())
        finally:
            await nc.close()
        return self

    async def stored_keys(self, marks: list[str]) -> list[str]:
        found = []
        for mark in marks:
            found += [k.decode() async for k in self.redis.scan_iter(match=f"*{mark}*", count=1000)]
        return found

    async def published(self, marks: list[str]) -> list[str]:
        """Subjects of messages stored since start() whose subject or payload names a mark."""
        nc = await nats.connect(self.nats_url)
        hits = []
        try:
            js = nc.jetstream()
            for stream, last in (await self._last(js)).items():
                for seq in range(self.last_seq[stream] + 1, last + 1):
                    try:
                        msg = await js.get_msg(stream, seq)
                    except nats.js.errors.NotFoundError:
                        continue
                    if any(m.encode() in (msg.data or b"") or m in msg.subject for m in marks):
                        hits.append(msg.subject)
        finally:
            await nc.close()
        return hits

    async def assert_untouched(self, marks: list[str]) -> None:
        assert await self.stored_keys(marks) == [], "a refused call stored something"
        assert await self.published(marks) == [], "a refused call published something"
