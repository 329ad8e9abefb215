"""One sender per idempotency key: the claim notification_svc takes in Redis before a send.

Real NATS (a stream and durable pull consumer of the test's own, driven by the services' consumer
loop), real valkey and a real SMTP server (aiosmtpd) that takes its time over each message, so that
copies of one job overlap. The registry (schedule_svc) is replaced by a fixed patient: it is not
what is tested here.
"""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes

import nats
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller

from clinic.v1 import common_pb2 as c
from clinic.v1 import notification_pb2 as n
from clinic.v1 import saga_pb2
from clinic_common.consumer import ConsumerLoop, ConsumerSpec
from clinic_tools import embedded
from notification_svc import domain, sender
from notification_svc.channels import EmailChannel
from notification_svc.config import DEFAULT_TEMPLATES, load_templates
from notification_svc.store import NotificationStore
from tests.harness import uid, wait_for

CLAIMS_DB = 12  # a Redis database of its own
SMTP_DELAY_S = 0.4  # the SMTP server holds each DATA this long: the copies' sends would overlap


class SlowMailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[float, object]] = []  # (monotonic arrival, message)

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(SMTP_DELAY_S)
        self.messages.append((time.monotonic(), message_from_bytes(envelope.content)))
        return "250 OK"

    def for_key(self, key: str) -> list:
        return [(at, m) for at, m in self.messages if m["Idempotency-Key"] == key]


class OnePatient:
    """Stands in for the registry: every patient is this one, who allows e-mail."""

    def __init__(self, patient: c.Patient) -> None:
        self._patient = patient

    async def patient(self, patient_id: str) -> c.Patient:
        return self._patient

    async def doctor(self, doctor_id: str) -> None:
        return None


@pytest.fixture(scope="module")
def mailbox():
    box = SlowMailbox()
    controller = Controller(box, hostname="127.0.0.1", port=embedded.free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
async def rig(servers, mailbox):
    """A stream of its own, the store on a Redis database of its own, and a Sender factory."""
    box, smtp_port = mailbox
    redis = aioredis.Redis.from_url(servers.redis_url, db=CLAIMS_DB)
    await redis.flushdb()
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    name = uid("claims").replace("-", "_").upper()
    subject = f"claimtest.{name}"
    await js.add_stream(name=name, subjects=[f"{subject}.>"])
    spec = ConsumerSpec(
        stream=name,
        durable="sender",
        filter_subjects=[f"{subject}.>"],
        description="test: the sender under its claim",
        ack_wait_s=30.0,
        max_deliver=20,
        backoff_s=[0.5],
        server_backoff=False,
        batch=32,
    )
    store = NotificationStore(redis)
    who = c.Patient(
        id=uid("p"), name="Nila Das", email=f"{uid('m')}@example.com", contact=c.ContactConsent(email=True)
    )

    def new_sender() -> sender.Sender:
        return sender.Sender(
            store,
            OnePatient(who),
            {domain.EMAIL: EmailChannel(f"smtp://127.0.0.1:{smtp_port}", "clinic@example.com")},
            domain.Templates(load_templates(DEFAULT_TEMPLATES)),
            max_attempts=spec.max_deliver,
        )

    loops: list[ConsumerLoop] = []
    tasks: list[asyncio.Task] = []

    def run(count: int) -> list[ConsumerLoop]:
        """`count` instances of the sender on the one durable consumer."""
        for _ in range(count):
            loop = ConsumerLoop(nc, js, spec, new_sender().handle)
            loops.append(loop)
            tasks.append(asyncio.create_task(loop.run()))
        return loops

    async def publish(booking_id: str, copies: int) -> str:
        event = c.BookingEvent(
            booking_id=booking_id,
            sequence=4,
            type=c.EVENT_TYPE_BOOKING_CONFIRMED,
            patient_id=who.id,
            appointment=c.Appointment(date="2030-01-10", start_time="10:30", reference="K7QX9M"),
        )
        job = saga_pb2.DeliveryJob(booking_id=booking_id, kind="confirmed", channel=domain.EMAIL, event=event)
        for _ in range(copies):  # distinct messages, one idempotency key (a job queued twice)
            await js.publish(f"{subject}.{booking_id}", job.SerializeToString())
        return domain.idempotency_key(booking_id, "confirmed", 4, domain.EMAIL)

    async def drained() -> bool:
        info = await js.consumer_info(name, spec.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    try:
        yield box, store, run, publish, drained
    finally:
        for loop in loops:
            loop.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await js.delete_stream(name)
        await nc.close()
        await redis.aclose()


async def _the_record(store: NotificationStore, booking_id: str) -> n.Delivery:
    _, deliveries = await store.deliveries(booking_id)
    (delivery,) = deliveries
    return delivery


async def test_concurrent_copies_of_one_job_send_one_mail(rig):
    """Eight copies of one job on two sender instances at once: the SMTP server gets one mail."""
    box, store, run, publish, drained = rig
    booking_id = uid("b")
    key = await publish(booking_id, copies=8)
    loops = run(2)
    await wait_for(lambda: asyncio.sleep(0, box.for_key(key)), 20, "the mail")
    await wait_for(drained, 30, "every copy acknowledged")
    assert len(box.for_key(key)) == 1
    # The copies did overlap: the ones that found the claim held were handed back, then saw "sent".
    assert sum(loop.failed for loop in loops) >= 1
    assert sum(loop.processed for loop in loops) == 8
    delivery = await _the_record(store, booking_id)
    assert delivery.status == n.DELIVERY_STATUS_SENT
    assert await store.already_sent(key)


async def test_a_claim_left_by_a_crashed_sender_lapses_and_the_redelivery_sends_once(rig):
    """A sender that took the claim and died (never sent, never released): nothing goes out while
    its lease runs; after it the message is delivered again and sent, once."""
    box, store, run, publish, drained = rig
    booking_id = uid("b")
    key = domain.idempotency_key(booking_id, "confirmed", 4, domain.EMAIL)
    lease_s = 2.0
    assert await store.claim(key, "claim:crashed-holder", lease_s) == "claimed"
    claimed_at = time.monotonic()
    await publish(booking_id, copies=1)
    (loop,) = run(1)
    await wait_for(lambda: asyncio.sleep(0, loop.failed >= 1), 10, "the held claim to refuse a delivery")
    assert box.for_key(key) == [] and not await store.already_sent(key)
    await wait_for(lambda: asyncio.sleep(0, box.for_key(key)), 20, "the mail after the lease")
    await wait_for(drained, 20, "the message acknowledged")
    [(arrived_at, mail)] = box.for_key(key)
    assert arrived_at - claimed_at >= lease_s - 0.1  # not before the crashed holder's lease ran out
    assert mail["Message-ID"].endswith("@clinic.notify>")
    assert loop.processed == 1
    delivery = await _the_record(store, booking_id)
    assert delivery.status == n.DELIVERY_STATUS_SENT and delivery.attempts >= 2
    # The lapsed holder cannot drop what replaced its claim.
    assert not await store.release_claim(key, "claim:crashed-holder")
    assert await store.already_sent(key)


async def test_a_booking_events_in_app_line_is_written_once_with_its_sent_mark(redis):
    """The notifier's in-app message of a booking event: line, mark and delivery in one script; a
    redelivered event (the same key) adds no second line and still reads as sent once."""
    store = NotificationStore(redis)
    booking_id, patient_id = uid("b"), uid("p")
    key = domain.idempotency_key(booking_id, "confirmed", 4, domain.APP)
    written = [
        await store.record_in_app_sent(
            key,
            booking_id,
            patient_id,
            f"{booking_id}: confirmed",
            "confirmed:4:app",
            kind="confirmed",
            channel=domain.APP,
        )
        for _ in range(3)
    ]
    assert written == [True, False, False]
    assert await redis.lrange(f"notifications:patient:{patient_id}", 0, -1) == [
        f"{booking_id}: confirmed".encode()
    ]
    assert await store.already_sent(key)
    owner, deliveries = await store.deliveries(booking_id)
    assert owner == patient_id
    assert [(d.kind, d.channel, d.status) for d in deliveries] == [
        ("confirmed", "app", n.DELIVERY_STATUS_SENT)
    ]
