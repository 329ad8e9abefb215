"""Tells the patient each final outcome and each waitlist offer, once, and reports it back to
booking_svc.

Delivery is a record per patient in Redis (the channel a real SMS/e-mail sender would read) plus a
log line naming only ids; the Lua script makes "record it" happen once however often the event is
delivered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from nats.aio.msg import Msg

from clinic.v1 import common_pb2, frontdesk_pb2, saga_pb2
from clinic_common import redis_io, subjects
from clinic_common.consumer import ConsumerSpec, Poison
from clinic_common.logs import get_logger

log = get_logger(__name__)

NOTIFY_ON = frozenset(
    {
        common_pb2.EVENT_TYPE_BOOKING_CONFIRMED,
        common_pb2.EVENT_TYPE_BOOKING_REJECTED,
        common_pb2.EVENT_TYPE_BOOKING_CANCELLED,
        common_pb2.EVENT_TYPE_WAITLIST_OFFERED,  # the patient must accept in time
        common_pb2.EVENT_TYPE_DOCTOR_UNAVAILABLE,  # the patient must not come in vain
    }
)
CHANNEL = "app"
RECORD_TTL_S = 40 * 24 * 3600
KEEP_PER_PATIENT = 200

CONSUMER = ConsumerSpec.of(
    subjects.NOTIFICATION_CONSUMER,
    "notification_svc: tells patients each booking's outcome and offer (saga.notify.<id>)",
)

VISIT_CONSUMER = ConsumerSpec.of(
    subjects.VISIT_NOTIFY_CONSUMER,
    "notification_svc: tells a patient they are called to the consultation room (VISITS)",
)

_RECORD_ONCE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"""

Publish = Callable[[str, bytes, str], Awaitable[None]]


class Notifier:
    def __init__(self, redis: aioredis.Redis, publish: Publish) -> None:
        self._record_once = redis_io.batched_script(redis, _RECORD_ONCE)
        self._publish = publish

    async def handle(self, msg: Msg) -> None:
        event = common_pb2.BookingEvent.FromString(msg.data)
        if not event.booking_id or event.sequence < 1:
            raise Poison("event without booking id or sequence")
        if event.type not in NOTIFY_ON:
            return
        text = event.message or common_pb2.EventType.Name(event.type)
        first = await self._record_once(
            keys=[
                f"notification:{event.booking_id}:{event.sequence}",
                f"notifications:patient:{event.patient_id}",
            ],
            args=[f"{event.booking_id}: {text}", RECORD_TTL_S, KEEP_PER_PATIENT],
        )
        if first:
            log.info(
                "notification.sent", booking_id=event.booking_id, patient_id=event.patient_id, channel=CHANNEL
            )
        sent = saga_pb2.NotificationSent(
            booking_id=event.booking_id, notified_sequence=event.sequence, channel=CHANNEL
        )
        await self._publish(
            subjects.saga_subject(subjects.NOTIFICATION_SENT, event.booking_id),
            sent.SerializeToString(),
            f"{event.booking_id}:notified:{event.sequence}",
        )


class CallNotifier:
    """Tells the patient, once per visit, that the doctor calls them in (KIND_CALLED on VISITS),
    in the same per-patient notification records as the booking outcomes."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._record_once = redis_io.batched_script(redis, _RECORD_ONCE)

    async def handle(self, msg: Msg) -> None:
        change = frontdesk_pb2.QueueChange.FromString(msg.data)
        visit = change.visit
        if not visit.booking_id or not visit.patient_id or change.sequence < 1:
            raise Poison("queue change without booking, patient or sequence")
        if change.kind != frontdesk_pb2.QueueChange.KIND_CALLED:
            return
        first = await self._record_once(
            keys=[
                f"notification:{visit.booking_id}:called",
                f"notifications:patient:{visit.patient_id}",
            ],
            args=[
                f"{visit.booking_id}: Please go to the consultation room (queue position {visit.position})",
                RECORD_TTL_S,
                KEEP_PER_PATIENT,
            ],
        )
        if first:
            log.info("notification.called_in", booking_id=visit.booking_id, patient_id=visit.patient_id)
