"""Delivers each job on NOTIFICATIONS to its channel, once per idempotency key.

A job whose key is marked sent is acknowledged without a call. A failure is recorded (FAILED, the
attempt) and raised: the consumer loop retries it with backoff (the first retry within 10 s), and
the last allowed attempt is recorded DEAD and dead-lettered (`clinic dlq`).

Before the send the key is claimed in Redis (one sender at a time, for CLAIM_LEASE_S): a second
copy of the job (a redelivery while the first still runs, another instance) finds the claim held,
sends nothing and is negatively acknowledged with the retry delay; by its next delivery the key is
sent (acknowledged without a call) or free. A failed send drops the claim; a holder that died
leaves it to lapse, so the redelivery sends. The window between a provider's 2xx and the mark
being written stays at-least-once and is closed by the provider: the webhook's `Idempotency-Key`
header (and the e-mail's fixed Message-ID) repeat on every attempt (docs/notifications.md).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from nats.aio.msg import Msg

from clinic.v1 import notification_pb2, saga_pb2
from clinic_common import metrics, subjects
from clinic_common.consumer import ConsumerSpec, Poison
from clinic_common.logs import get_logger

from . import domain
from .channels import Channel, DeliveryFailed, Outgoing
from .directory import Directory
from .store import CLAIMED, SENT, NotificationStore

log = get_logger(__name__)

ACK_WAIT_S = 30.0  # above the slowest attempt (an SMTP or webhook call times out after 10 s)
# A claim outlives a send's timeout and lapses by the time NATS redelivers a dead holder's message.
CLAIM_LEASE_S = ACK_WAIT_S


class ClaimHeld(Exception):
    """Another sender holds this idempotency key right now: send nothing, come back later."""


def consumer_spec(backoff_s: tuple[float, ...]) -> ConsumerSpec:
    """The first attempt plus one retry per wait; the last failure is dead-lettered."""
    spec = ConsumerSpec.of(
        subjects.SEND_CONSUMER,
        "notification_svc: delivers each message to its channel (e-mail, SMS, WhatsApp ...)",
    )
    return dataclasses.replace(
        spec,
        max_deliver=len(backoff_s) + 1,
        backoff_s=list(backoff_s),
        server_backoff=False,  # the waits between attempts are the configured ones, exactly
        ack_wait_s=ACK_WAIT_S,
        batch=32,
    )


D = notification_pb2


class Sender:
    def __init__(
        self,
        store: NotificationStore,
        directory: Directory,
        channels: dict[str, Channel],
        templates: domain.Templates,
        max_attempts: int,
        confirm: tuple[str, timedelta, ZoneInfo] | None = None,  # first reminder kind, CONFIRM_BY, tz
    ) -> None:
        self._confirm = confirm
        self._store = store
        self._directory = directory
        self._channels = channels
        self._templates = templates
        self._max_attempts = max_attempts

    async def handle(self, msg: Msg) -> None:
        job = saga_pb2.DeliveryJob.FromString(msg.data)
        event = job.event
        if not job.booking_id or not job.kind or event.sequence < 1 or job.channel not in domain.CHANNELS:
            raise Poison("delivery job without booking, kind, event or a known channel")
        key = domain.idempotency_key(job.booking_id, job.kind, event.sequence, job.channel)
        if await self._store.already_sent(key):
            return
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        patient = None
        if domain.reads_patient(job.channel, job.kind):
            patient = await self._directory.patient(event.patient_id)
        if job.channel in domain.NEEDS_CONSENT and not domain.channels_for(
            (job.channel,), patient.contact if patient is not None else None
        ):
            log.info("notification.no_consent", booking_id=job.booking_id, channel=job.channel)
            return  # withdrawn since the job was queued
        to = domain.address_of(job.channel, patient) if job.channel in domain.NEEDS_CONSENT else ""
        if job.channel in domain.NEEDS_CONSENT and not to:
            log.info("notification.no_address", booking_id=job.booking_id, channel=job.channel)
            return
        doctor = await self._directory.doctor(event.appointment.doctor_id)
        values = domain.text_values(patient, event.appointment, doctor.name if doctor else "")
        template = job.kind
        if self._confirm is not None and job.kind == self._confirm[0]:
            _, confirm_by, tz = self._confirm
            appointment = event.appointment
            day_start = (
                ""
                if appointment.start_time
                else await self._directory.day_start(appointment.doctor_id, appointment.date)
            )
            start = domain.appointment_start(appointment, day_start, tz)
            if start is not None:
                template = domain.CONFIRM_TEMPLATE
                values["confirm_by"] = (start - confirm_by).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        text = self._templates.render(template, values)
        field = f"{job.kind}:{event.sequence}:{job.channel}"
        masked = domain.mask(job.channel, to)
        token = await self._claim(key)
        if token is None:
            return  # another copy sent it meanwhile
        started = time.monotonic()
        try:
            await self._deliver(job, key, to, text, token)
        except DeliveryFailed as exc:
            dead = attempt >= self._max_attempts
            status = D.DELIVERY_STATUS_DEAD if dead else D.DELIVERY_STATUS_FAILED
            await self._store.record(
                job.booking_id,
                event.patient_id,
                field,
                kind=job.kind,
                channel=job.channel,
                to=masked,
                status=status,
                attempts=attempt,
            )
            metrics.NOTIFICATIONS.labels(job.channel, "dead" if dead else "failed").inc()
            log.warning(
                "notification.failed",
                booking_id=job.booking_id,
                kind=job.kind,
                channel=job.channel,
                attempt=attempt,
                reason=str(exc),
            )
            raise
        metrics.NOTIFICATION_SECONDS.labels(job.channel).observe(time.monotonic() - started)
        await self._store.record_sent(
            key,
            job.booking_id,
            event.patient_id,
            field,
            kind=job.kind,
            channel=job.channel,
            to=masked,
            attempts=attempt,
        )
        metrics.NOTIFICATIONS.labels(job.channel, "sent").inc()
        log.info("notification.sent", booking_id=job.booking_id, kind=job.kind, channel=job.channel)

    async def _claim(self, key: str) -> str | None:
        """This handler's claim token on `key`; None if it was sent; ClaimHeld if another holds it."""
        token = f"claim:{uuid.uuid4().hex}"
        outcome = await self._store.claim(key, token, CLAIM_LEASE_S)
        if outcome == SENT:
            return None
        if outcome != CLAIMED:
            raise ClaimHeld("another sender holds this idempotency key")
        return token

    async def _deliver(
        self, job: saga_pb2.DeliveryJob, key: str, to: str, text: domain.Text, token: str
    ) -> None:
        """Sends under the claim; a refused send drops it (the retry may send), anything else
        (the provider may have taken it) leaves it to lapse."""
        try:
            await self._send(job, key, to, text)
        except DeliveryFailed:
            await self._store.release_claim(key, token)
            raise

    async def _send(self, job: saga_pb2.DeliveryJob, key: str, to: str, text: domain.Text) -> None:
        if job.channel == domain.APP:
            told = job.event.message if not job.kind.startswith(domain.REMINDER_PREFIX) else text.subject
            await self._store.record_in_app(key, job.event.patient_id, f"{job.booking_id}: {told}")
            return
        channel = self._channels.get(job.channel)
        if channel is None:
            raise DeliveryFailed(f"channel {job.channel} is not configured on this instance")
        await channel.send(
            Outgoing(
                booking_id=job.booking_id,
                kind=job.kind,
                channel=job.channel,
                to=to,
                text=text,
                idempotency_key=key,
            )
        )
