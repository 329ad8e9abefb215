"""The consumer loop on a real JetStream: a message that keeps failing ends in DEAD_LETTERS after
max_deliver tries (with the last error as the reason), and the loop goes on with the next message.

A subject no service consumes (saga.test.<id>) keeps the running system out of it.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import nats
import pytest

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


async def _publish_later(js, subject: str, msg_id: str, after_s: float) -> None:
    await asyncio.sleep(after_s)  # the fetch must be waiting when it comes
    await nats_io.publish(js, subject, b"x", msg_id=msg_id)


async def test_the_puller_fetches_what_waits_in_one_batch_and_acks_a_batch_in_one_write(servers, system):
    """clinic_common.nats_pull (issue 22): an empty consumer times out; messages waiting come as one
    batch no larger than asked; `ack_all` acknowledges them all (nothing left pending or redelivered)."""
    from clinic_common.consumer import ensure_consumer
    from clinic_common.nats_pull import Puller

    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    run = uid("pull")
    spec = ConsumerSpec(
        stream=subjects.SAGA_STREAM,
        durable=f"test-{run}",
        filter_subjects=[f"saga.test.{run}.>"],
        description="test consumer",
        ack_wait_s=60.0,  # no redelivery can stand in for an ack within the test
    )
    await ensure_consumer(js, spec)
    puller = await Puller(nc, spec.stream, spec.durable).start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await puller.fetch(16, 0.3)
        assert loop.time() - started < 2.0
        # The expired request's late 408 must not end the next one: a message published while it
        # waits is what it returns.
        publishing = asyncio.ensure_future(_publish_later(js, f"saga.test.{run}.late", f"{run}:late", 0.4))
        late = await puller.fetch(16, 3.0)
        await publishing
        assert [m.subject for m in late] == [f"saga.test.{run}.late"]
        await puller.ack_all(late)
        for i in range(12):
            await nats_io.publish(js, f"saga.test.{run}.{i}", b"x", msg_id=f"{run}:{i}")
        got: list = []
        while len(got) < 12:
            batch = await puller.fetch(5, 1.0)
            assert 1 <= len(batch) <= 5
            got += batch
            await puller.ack_all(batch)
        assert sorted(int(m.subject.rpartition(".")[2]) for m in got) == list(range(12))

        async def settled() -> bool:
            info = await js.consumer_info(spec.stream, spec.durable)
            return info.num_ack_pending == 0 and info.num_pending == 0

        await wait_for(settled, what="every message acknowledged")  # long before ack_wait ends: acked
    finally:
        await puller.stop()
        await js.delete_consumer(spec.stream, spec.durable)
        await nc.close()
