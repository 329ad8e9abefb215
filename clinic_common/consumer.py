"""The one JetStream pull-consumer loop every service uses.

Handlers are plain `async def handle(msg)`; they succeed (ack), raise `Poison` (the message can never
succeed: dead-lettered with the reason, then terminated) or raise anything else (negative-ack with a
growing delay; the last allowed delivery is dead-lettered, and a message whose holder died on its last
delivery reaches the dead-letter stream through the max-deliveries advisory).
A bad message never stops the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api

from clinic_common import messaging, metrics, nats_io, nats_pull, tracing
from clinic_common.config import ack_wait_seconds
from clinic_common.logs import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=Message)

Handler = Callable[[Msg], Awaitable[None]]


class Poison(Exception):
    """This message can never be processed (undecodable, unknown version...)."""


def same_booking(payload_id: str, subject_id: str) -> None:
    """A saga payload's booking id is its subject's last token (`saga.<step>.<verb>.<booking_id>`);
    anything else is Poison: acting on it would touch another booking than the one addressed."""
    if not payload_id or payload_id != subject_id:
        raise Poison(f"payload booking id {payload_id!r} does not match the subject")


def decode(message_type: type[M], data: bytes, subject_id: str) -> M:
    """The payload of a saga message, checked against its subject's booking id."""
    payload = message_type.FromString(data)
    same_booking(payload.booking_id, subject_id)
    return payload


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subjects: list[str]
    description: str
    # A handler takes milliseconds, or a few seconds while Redis or NATS restarts; a message held by a
    # process that died comes back after ack_wait. CLINIC_ACK_WAIT_SECONDS tunes it.
    ack_wait_s: float = 0.0  # 0: CLINIC_ACK_WAIT_SECONDS, read when the consumer is created
    max_deliver: int = 10
    backoff_s: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 5.0, 10.0, 30.0])
    max_ack_pending: int = 2000
    batch: int = 128
    fetch_timeout_s: float = 1.0
    # False: no server-side BackOff list, so each retry waits exactly its nak delay (nats-server lets a
    # BackOff list override the delay); an unacked message then comes back after ack_wait.
    server_backoff: bool = True

    @classmethod
    def of(cls, durable: str, description: str) -> ConsumerSpec:
        """The durable consumer `durable` as the messaging map (clinic_common/messaging.py) says."""
        found = messaging.consumer(durable)
        return cls(found.stream, durable, list(found.filters), description)

    def config(self) -> js_api.ConsumerConfig:
        ack_wait_s = self.ack_wait_s or ack_wait_seconds()
        return js_api.ConsumerConfig(
            durable_name=self.durable,
            description=self.description,
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=self.max_deliver,
            # Redelivery after an unacked delivery (the holder died): never sooner than ack_wait.
            backoff=[ack_wait_s * k for k in (1, 1, 2, 3, 6)] if self.server_backoff else None,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=self.filter_subjects,
        )

    def retry_delay(self, delivered: int) -> float:
        return self.backoff_s[min(max(delivered - 1, 0), len(self.backoff_s) - 1)]


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create or update the durable consumer explicitly (pull_subscribe would keep a stale config)."""
    await js.add_consumer(spec.stream, spec.config())


class ConsumerLoop:
    def __init__(self, nc: NATS, js: JetStreamContext, spec: ConsumerSpec, handler: Handler) -> None:
        self._nc = nc
        self._js = js
        self._spec = spec
        self._handler = handler
        self._stopping = asyncio.Event()
        self._advisories: list = []
        self.processed = 0
        self.failed = 0

    def stop(self) -> None:
        """Stop fetching; in-flight messages finish (a flag, not task.cancel(): see PITFALLS)."""
        self._stopping.set()

    async def run(self) -> None:
        spec = self._spec
        sub = await self._bind()
        if sub is None:
            return  # stopped before JetStream answered
        log.info("consumer.started", stream=spec.stream, consumer=spec.durable)
        gauge = asyncio.create_task(self._report_pending())
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await sub.fetch(spec.batch, spec.fetch_timeout_s)
                except TimeoutError:
                    continue
                except nats_io.TRANSIENT_NATS_ERRORS as exc:
                    log.warning("consumer.fetch_failed", consumer=spec.durable, error=repr(exc))
                    await asyncio.sleep(0.5)
                    continue
                acks: list[Msg] = []  # the batch's successes, acknowledged together: one write, one flush
                work = (self._process(m, acks) for m in msgs)
                outcomes = await asyncio.gather(*work, return_exceptions=True)
                await _quietly(sub.ack_all(acks))
                for outcome in outcomes:
                    if isinstance(outcome, Exception):  # a bug in the loop itself: log it, keep going
                        log.error("consumer.process_failed", consumer=spec.durable, error=repr(outcome))
        finally:
            gauge.cancel()
            for adv in self._advisories:
                await _quietly(adv.unsubscribe())
            await _quietly(sub.stop())
            log.info("consumer.stopped", consumer=spec.durable)

    async def _bind(self):
        """Declare the durable consumer and bind to it, waiting out a JetStream that cannot answer
        yet (a node restarting, a leader election in a cluster) instead of failing the process."""
        spec = self._spec
        quick = nats_io.control_api(self._nc)
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await ensure_consumer(quick, spec)
                # Our own MSG.NEXT requests on one inbox (issue 22: nats-py's fetch() costs most per message)
                sub = await nats_pull.Puller(self._nc, spec.stream, spec.durable).start()
            except nats_io.TRANSIENT_NATS_ERRORS as exc:
                log.warning("consumer.bind_retry", consumer=spec.durable, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            await self._watch_max_deliveries()
            return sub
        return None

    async def _process(self, msg: Msg, acks: list[Msg]) -> None:
        """Runs in a task of its own (gather), so the ids bound here stay with this message."""
        spec = self._spec
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        booking_id = msg.subject.rpartition(".")[2]
        structlog.contextvars.bind_contextvars(booking_id=booking_id)
        parent = (msg.headers or {}).get(tracing.HEADER, "")
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.consumer.group.name": spec.durable,
            "clinic.booking_id": booking_id,
        }
        with tracing.span(f"process {spec.durable}", "consumer", parent, **attributes):
            await self._handle(msg, spec, delivered, acks)

    async def _handle(self, msg: Msg, spec, delivered: int, acks: list[Msg]) -> None:
        if delivered > 1:
            metrics.CONSUMER_REDELIVERIES.labels(spec.durable).inc()
        try:
            await self._handler(msg)
        except (Poison, DecodeError) as exc:
            self.failed += 1
            metrics.CONSUMER_MESSAGES.labels(spec.durable, "poison").inc()
            await self._give_up(msg, f"poison: {exc}", delivered)
            return
        except Exception as exc:
            self.failed += 1
            if delivered >= spec.max_deliver:  # the last try: park it where an operator sees it
                await self._give_up(msg, f"max deliveries exceeded: {exc!r}", delivered)
                return
            delay = spec.retry_delay(delivered)
            log.warning(
                "consumer.retry",
                consumer=spec.durable,
                subject=msg.subject,
                delivered=delivered,
                delay_s=delay,
                error=repr(exc),
            )
            metrics.CONSUMER_MESSAGES.labels(spec.durable, "retry").inc()
            await _quietly(msg.nak(delay=delay))
            return
        self.processed += 1
        metrics.CONSUMER_MESSAGES.labels(spec.durable, "ack").inc()
        acks.append(msg)

    async def _give_up(self, msg: Msg, reason: str, delivered: int) -> None:
        """Dead-letter, then terminate. If the dead letter cannot be written (NATS is failing over),
        hand the message back instead: it comes again and is dead-lettered then, never dropped."""
        try:
            await self._dead_letter(msg, reason, delivered)
        except Exception as exc:
            log.warning("dlq.deferred", consumer=self._spec.durable, subject=msg.subject, error=repr(exc))
            await _quietly(msg.nak(delay=self._spec.retry_delay(delivered)))
            return
        await _quietly(msg.term())

    async def _report_pending(self, period_s: float = 5.0) -> None:
        spec = self._spec
        while True:
            try:
                info = await self._js.consumer_info(spec.stream, spec.durable)
                metrics.CONSUMER_PENDING.labels(spec.durable).set(info.num_pending + info.num_ack_pending)
            except Exception as exc:
                log.debug("consumer.info_failed", consumer=spec.durable, error=repr(exc))
            await asyncio.sleep(period_s)

    async def _dead_letter(self, msg: Msg, reason: str, delivered: int) -> None:
        meta = msg.metadata
        await nats_io.dead_letter(
            self._js,
            stream=self._spec.stream,
            consumer=self._spec.durable,
            stream_sequence=meta.sequence.stream if meta else 0,
            subject=msg.subject,
            payload=msg.data,
            reason=reason,
            deliveries=delivered,
        )

    async def _watch_max_deliveries(self) -> None:
        """A message that used up max_deliver goes to the dead-letter stream, fetched by sequence.

        Every instance of a service listens; the dead letter's Nats-Msg-Id makes the copies one.
        """
        spec = self._spec
        subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{spec.stream}.{spec.durable}"

        async def on_advisory(adv: Msg) -> None:
            try:
                info = json.loads(adv.data)
                seq = int(info["stream_seq"])
                original = await self._js.get_msg(spec.stream, seq)
                await nats_io.dead_letter(
                    self._js,
                    stream=spec.stream,
                    consumer=spec.durable,
                    stream_sequence=seq,
                    subject=original.subject or "",
                    payload=original.data or b"",
                    reason="max deliveries exceeded",
                    deliveries=int(info.get("deliveries", spec.max_deliver)),
                )
            except Exception as exc:
                log.error("dlq.advisory_failed", consumer=spec.durable, error=repr(exc))

        self._advisories.append(await self._nc.subscribe(subject, cb=on_advisory))


async def _quietly(awaitable: Awaitable[object]) -> None:
    """Acks and unsubscribes during a disconnect fail; redelivery covers a lost ack."""
    try:
        await awaitable
    except Exception as exc:
        log.debug("nats.best_effort_failed", error=repr(exc))
