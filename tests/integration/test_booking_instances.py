"""Two booking_svc instances over one store: a copy one instance remembers never decides alone.

Each instance keeps the records it wrote as a hint. When another instance has moved a booking on
since, a saga message judged on the stale copy must be judged again on the stored record at once,
not refused and left to redelivery (which may land on the same instance again and again).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from booking_svc.catalog import DEFAULT_CATALOG, load
from booking_svc.saga import Bookings
from booking_svc.store import BookingStore
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.principal import ANONYMOUS_ADMIN
from tests.harness import future_date, patient, uid


def _instance(redis, published: list) -> Bookings:
    async def publish(message: saga_pb2.OutboxMessage) -> None:
        published.append(message.subject)

    return Bookings(
        BookingStore(redis), publish, load(DEFAULT_CATALOG), ZoneInfo("Asia/Kolkata"), timeout_s=600
    )


async def test_a_stale_copy_on_one_instance_does_not_block_a_step_another_instance_enabled(redis):
    published: list[str] = []
    first, second = _instance(redis, published), _instance(redis, published)
    request = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], appointment_date=future_date(), request_id=uid("inst")
    )
    created = await first.create(request, ANONYMOUS_ADMIN)  # `first` remembers the PENDING record

    decided = saga_pb2.DiscountDecided(
        booking_id=created.id,
        discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE),
        message="Not eligible",
    )
    await second.on_discount_decided(decided)  # `second` moves it on
    stored = await second.get(created.id, ANONYMOUS_ADMIN)
    assert stored.status == c.BOOKING_STATUS_CONFIRMED
    outcome_seq = stored.history[-1].sequence

    # The notifier tells `first` about an event only `second` has seen: it must apply, first time.
    await first.on_notification_sent(
        saga_pb2.NotificationSent(booking_id=created.id, notified_sequence=outcome_seq, channel="test")
    )
    after = await first.get(created.id, ANONYMOUS_ADMIN)
    assert [e.type for e in after.history][-1] == c.EVENT_TYPE_NOTIFICATION_SENT
    assert sum(e.type == c.EVENT_TYPE_NOTIFICATION_SENT for e in after.history) == 1

    # And the redelivery of the same notification (to either instance) changes nothing.
    await second.on_notification_sent(
        saga_pb2.NotificationSent(booking_id=created.id, notified_sequence=outcome_seq, channel="test")
    )
    assert len((await first.get(created.id, ANONYMOUS_ADMIN)).history) == len(after.history)
