"""The consumer loop on a real JetStream: a message that keeps failing ends in DEAD_LETTERS after
max_deliver tries (with the last error as the reason), and the loop goes on with the next message.

A subject no service consumes (saga.test.<id>) keeps the running system out of it.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import nats

from clinic.v1 import saga_pb2
from clinic_common import nats_io, subjects
from clinic_common.consumer import ConsumerLoop, ConsumerSpec, Poison
from tests.harness import uid, wait_for


async def _letter(js, consumer: str, subject: str) -> saga_pb2.DeadLetter | None:
    try:
        msg = await js.get_msg(
            subjects.DLQ_STREAM, subject=subjects.dlq_subject(subjects.SAGA_STREAM, consumer)
        )
    except nats.js.errors.NotFoundError:
        return None
    letter = saga_pb2.DeadLetter.FromString(msg.data)
    return letter if letter.subject == subject else None


async def test_a_message_that_keeps_failing_is_dead_lettered_and_the_loop_goes_on(servers, system):
    """`system` only for the streams its services declare at start-up."""
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    run = uid("loop")
    durable = f"test-{run}"
    spec = ConsumerSpec(
        stream=subjects.SAGA_STREAM,
        durable=durable,
        filter_subjects=[f"saga.test.{run}.>"],
        description="test consumer",
        ack_wait_s=0.5,
        max_deliver=6,  # the server wants more deliveries than backoff steps (5)
        backoff_s=[0.05],
        fetch_timeout_s=0.2,
    )
    calls: Counter = Counter()

    async def handle(msg) -> None:
        calls[msg.subject] += 1
        kind = msg.subject.rpartition(".")[2]
        if kind == "broken":
            raise RuntimeError("downstream refused")
        if kind == "poison":
            raise Poison("cannot decode")

    loop = ConsumerLoop(nc, js, spec, handle)
    task = asyncio.create_task(loop.run())
    try:
        broken, poison, fine = (f"saga.test.{run}.{k}" for k in ("broken", "poison", "fine"))
        for subject in (broken, poison, fine):
            await js.publish(subject, b"payload", headers={"Nats-Msg-Id": uid("m")})

        letter = await wait_for(
            lambda: _letter(js, durable, broken), what="the failing message dead-lettered"
        )
        assert letter.reason.startswith("max deliveries exceeded") and "downstream refused" in letter.reason
        assert letter.deliveries == 6 and letter.payload == b"payload"
        assert calls[broken] == 6  # tried max_deliver times, then parked: never a seventh time

        async def fine_processed() -> bool:
            return calls[fine] == 1

        await wait_for(fine_processed, what="the next message processed")
        assert calls[poison] == 1  # a poison message is not retried
        ours = sorted(x.subject for _, x in await nats_io.dead_letters(js) if x.consumer == durable)
        assert ours == sorted([broken, poison])  # the fine message is not there; nothing twice
        assert not task.done()
    finally:
        loop.stop()
        await asyncio.wait_for(task, 5)
        await js.delete_consumer(subjects.SAGA_STREAM, durable)
        await nc.close()
