"""A JetStream pull consumer on nats-py's lower layers (issue 22): ConsumerLoop's and the reference's.

`fetch()` is nats-py's `PullSubscription.fetch()` without its per-message costs: our own
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` requests (batch, expires, no_wait) on one wildcard
inbox subscription, at most one request open at a time: each delivery counts against it, and a
terminating status (404, 408, 409) ends it only if it answers that request (a status comes on the
request's own reply subject, `<inbox>.<n>`: a late 408 of an earlier request is ignored); messages are taken
from the subscription's queue in bulk instead of one `next_msg()` (an `asyncio.wait_for`) each.
`ack_all()` acknowledges a batch as plain publishes of `+ACK` to each message's reply subject,
written as one buffer with one flush.
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

TERMINATORS = frozenset({"404", "408", "409"})
HEARTBEAT = "100"


class Puller:
    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._requests = 0
        self._current = ""  # the reply subject of the open request
        self._sub = None
        self._remaining = 0  # deliveries the open request may still bring (0: none open)
        self._expires_at = 0.0

    async def start(self) -> Puller:
        self._sub = await self._nc.subscribe(self._inbox + ".*")
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def _take(self, into: list[Msg], limit: int) -> None:
        """What the queue holds now, up to `limit` messages (statuses close the open request)."""
        sub = self._sub
        queue = sub._pending_queue
        while len(into) < limit and not queue.empty():
            msg = queue.get_nowait()
            sub._pending_size -= len(msg.data)
            self._count(msg, into)

    def _count(self, msg: Msg, into: list[Msg]) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._remaining -= 1
            into.append(msg)
        elif status in TERMINATORS and msg.subject == self._current:
            self._remaining = 0
        # 100: an idle heartbeat (not asked for): nothing to count

    async def fetch(self, batch: int, wait_s: float) -> list[Msg]:
        """Up to `batch` messages: those already delivered, else the first to come within `wait_s`
        (TimeoutError if none) together with what arrived with it."""
        msgs: list[Msg] = []
        self._take(msgs, batch)
        if msgs:
            return msgs
        loop = asyncio.get_running_loop()
        if self._remaining <= 0 or loop.time() >= self._expires_at:
            request = {"batch": batch, "expires": int(wait_s * 1e9), "no_wait": True}
            self._remaining = batch
            self._expires_at = loop.time() + wait_s
            self._requests += 1
            self._current = f"{self._inbox}.{self._requests}"
            await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._current)
        queue = self._sub._pending_queue
        async with asyncio.timeout(wait_s):
            while not msgs:
                msg = await queue.get()
                self._sub._pending_size -= len(msg.data)
                self._count(msg, msgs)
                if not msgs and self._remaining <= 0:
                    raise TimeoutError  # the request ended empty
        self._take(msgs, batch)
        return msgs

    async def ack_all(self, msgs: list[Msg]) -> None:
        """`+ACK` to every message's reply subject: one buffer, one flush."""
        if not msgs:
            return
        blob = b"".join(b"PUB %s 4\r\n+ACK\r\n" % m.reply.encode() for m in msgs)
        await self._nc._send_command(blob)
        await self._nc._flush_pending()
