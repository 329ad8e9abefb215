"""The messaging map: every stream, subject and durable consumer name, in one place.

Subjects carry the booking id as their last token, so `nats sub 'booking.events.<id>'` follows one
booking and `nats sub 'saga.*.*.<id>'` shows its internal saga traffic. Notifications are not part
of the saga: notification_svc reads BOOKING_EVENTS itself and keeps its own work in NOTIFICATIONS
and REMINDERS (`nats sub 'notify.send.*.<id>'`, `reminders.*.*.<id>`).
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
PLACES_DECIDED = "saga.places.decided"  # refused or waitlisted (and reserved, for a request without discount)
PLACES_RESERVED = "saga.places.reserved"  # reserved: straight on to discount_svc, not back to booking_svc
PLACES_RELEASE = "saga.places.release"
PLACES_RELEASED = "saga.places.released"
PLACES_OFFERED = "saga.places.offered"  # a freed place held for a waitlisted booking
PLACES_EXPIRED = "saga.places.expired"  # an offer ran out unaccepted
PLACES_ACCEPT = "saga.places.accept"  # the patient accepted an offer
PLACES_MOVE = "saga.places.move"  # a reschedule: hold the new places, then release the old ones
PLACES_MOVED = "saga.places.moved"  # its outcome: moved, or refused (the booking keeps what it had)
DOCTOR_UNAVAILABLE = "saga.doctor.unavailable"  # a held booking's day was marked absent (schedule_svc)
DISCOUNT_REQUESTED = "saga.discount.requested"  # booking_svc asks (a reservation without discount part)
DISCOUNT_DECIDED = "saga.discount.decided"
QUOTA_RELEASE = "saga.quota.release"
QUOTA_RELEASED = "saga.quota.released"
PATIENT_NO_SHOW = "saga.patient.noshow"  # booking_svc -> schedule_svc: count it on the patient

# Messages no consumer could process, with the reason (clinic.v1.DeadLetter).
DLQ_STREAM = "DEAD_LETTERS"
DLQ_SUBJECTS = "dlq.>"
DLQ_DESCRIPTION = "Messages a consumer gave up on (max deliveries or terminated), with the reason"

# The check-in queues (clinic.v1.QueueChange): every check-in, call, completion and no-show,
# subject visits.<doctor_id or "general">.<date>.<booking_id>; `nats sub 'visits.*.<date>.>'` follows a day.
VISITS_STREAM = "VISITS"
VISITS_SUBJECTS = "visits.>"
VISITS_DESCRIPTION = (
    "Check-in queue changes (clinic.v1.QueueChange), subject visits.<doctor_id|general>.<date>.<booking_id>"
)
GENERAL_QUEUE = "general"  # the subject token of the clinic's general queue (no doctor)

# notification_svc's work queue: one job per (booking, kind, channel) (clinic.v1.DeliveryJob),
# subject notify.send.<channel>.<booking_id>; retried with backoff, then dead-lettered.
NOTIFY_STREAM = "NOTIFICATIONS"
NOTIFY_SUBJECTS = "notify.>"
NOTIFY_DESCRIPTION = "One message per booking, kind and channel for notification_svc to deliver"
SEND = "notify.send"

# Reminders as JetStream message schedules (ADR-51): a schedule on reminders.schedule.<kind>.<id>
# (one per subject: a re-publish replaces it, a purge drops it) fires a copy onto
# reminders.due.<kind>.<id> at its time (clinic.v1.ReminderDue).
REMINDERS_STREAM = "REMINDERS"
REMINDERS_SUBJECTS = "reminders.>"
REMINDERS_DESCRIPTION = "Reminder schedules (Nats-Schedule @at) and the reminders they fire"
REMINDER_SCHEDULE = "reminders.schedule"
REMINDER_DUE = "reminders.due"

# Durable consumers.
DISCOUNT_CONSUMER = "discount-svc"
BOOKING_CONSUMER = "booking-svc"
NOTIFICATION_CONSUMER = "notification-svc"  # on BOOKING_EVENTS: what to tell, and reminders to set
SEND_CONSUMER = "notification-svc-send"  # on NOTIFICATIONS: delivers each job to its channel
REMINDER_CONSUMER = "notification-svc-reminders"  # on REMINDERS (reminders.due.>): a reminder is due
SCHEDULE_CONSUMER = "schedule-svc"
VISIT_NOTIFY_CONSUMER = "notification-svc-visits"  # on VISITS: tells a patient they are called in


def event_subject(booking_id: str) -> str:
    return f"booking.events.{booking_id}"


def saga_subject(prefix: str, booking_id: str) -> str:
    return f"{prefix}.{booking_id}"


def booking_id_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def dlq_subject(stream: str, consumer: str) -> str:
    return f"dlq.{stream}.{consumer}"


def queue_token(doctor_id: str) -> str:
    return doctor_id or GENERAL_QUEUE


def visit_subject(doctor_id: str, day: str, booking_id: str) -> str:
    return f"visits.{queue_token(doctor_id)}.{day}.{booking_id}"


def queue_subjects(doctor_id: str, day: str) -> str:
    """Every change of one queue (doctor and date)."""
    return f"visits.{queue_token(doctor_id)}.{day}.*"


def send_subject(channel: str, booking_id: str) -> str:
    return f"{SEND}.{channel}.{booking_id}"


def reminder_schedule_subject(kind: str, booking_id: str) -> str:
    return f"{REMINDER_SCHEDULE}.{kind}.{booking_id}"


def reminder_due_subject(kind: str, booking_id: str) -> str:
    return f"{REMINDER_DUE}.{kind}.{booking_id}"
