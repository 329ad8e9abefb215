"""The messaging map: every stream, subject and durable consumer name, in one place.

Subjects carry the booking id as their last token, so `nats sub 'booking.events.<id>'` follows one
booking and `nats sub 'saga.*.*.<id>'` shows its internal saga traffic.
"""

from __future__ import annotations

# Public, ordered per booking: every BookingEvent (clinic.v1.BookingEvent).
EVENTS_STREAM = "BOOKING_EVENTS"
EVENTS_SUBJECTS = "booking.events.>"
EVENTS_DESCRIPTION = (
    "Every booking's audit events (clinic.v1.BookingEvent), subject booking.events.<booking_id>"
)

# Internal saga traffic between the services (payloads in clinic/v1/saga.proto).
SAGA_STREAM = "SAGA"
SAGA_SUBJECTS = "saga.>"
SAGA_DESCRIPTION = "Saga commands and replies between services, subject saga.<step>.<verb>.<booking_id>"

PLACES_REQUESTED = "saga.places.requested"
PLACES_DECIDED = "saga.places.decided"
PLACES_RELEASE = "saga.places.release"
PLACES_RELEASED = "saga.places.released"
PLACES_OFFERED = "saga.places.offered"  # a freed place held for a waitlisted booking
PLACES_EXPIRED = "saga.places.expired"  # an offer ran out unaccepted
PLACES_ACCEPT = "saga.places.accept"  # the patient accepted an offer
DISCOUNT_REQUESTED = "saga.discount.requested"
DISCOUNT_DECIDED = "saga.discount.decided"
QUOTA_RELEASE = "saga.quota.release"
QUOTA_RELEASED = "saga.quota.released"
NOTIFICATION_SENT = "saga.notification.sent"
NOTIFY = "saga.notify"  # a booking's final event again, for the notifier only (payload: BookingEvent)

# Messages no consumer could process, with the reason (clinic.v1.DeadLetter).
DLQ_STREAM = "DEAD_LETTERS"
DLQ_SUBJECTS = "dlq.>"
DLQ_DESCRIPTION = "Messages a consumer gave up on (max deliveries or terminated), with the reason"

# Durable consumers.
DISCOUNT_CONSUMER = "discount-svc"
BOOKING_CONSUMER = "booking-svc"
NOTIFICATION_CONSUMER = "notification-svc"
SCHEDULE_CONSUMER = "schedule-svc"


def event_subject(booking_id: str) -> str:
    return f"booking.events.{booking_id}"


def saga_subject(prefix: str, booking_id: str) -> str:
    return f"{prefix}.{booking_id}"


def booking_id_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def dlq_subject(stream: str, consumer: str) -> str:
    return f"dlq.{stream}.{consumer}"
