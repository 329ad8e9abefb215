"""The messaging map: per service, what it consumes (durable consumers), produces, hears live and
reads back by subject. Built from the names in clinic_common/subjects.py.

From it come every durable consumer's stream and filter subjects (`ConsumerSpec.of`, in each
service's events) and every service's NATS permissions (clinic_tools/access.py). The subject tables in
README.md and docs/architecture.md are held against it by tests/unit/clinic_common/test_messaging.py.

Adding a subject: its name in subjects.py, then one line here under the service that publishes it
and one under the consumer that reads it; the permissions and the consumer follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinic_common import subjects as s


@dataclass(frozen=True)
class Consumer:
    stream: str
    durable: str
    filters: tuple[str, ...]  # filter subjects, as JetStream matches them


@dataclass(frozen=True)
class Messaging:
    consumes: tuple[Consumer, ...] = ()
    produces: tuple[str, ...] = ()  # subjects it publishes (patterns)
    hears: tuple[str, ...] = ()  # live core subscriptions (watchers)
    reads: tuple[str, ...] = ()  # streams it reads back by subject (direct get)
    purges: tuple[str, ...] = ()  # streams it purges subjects of (a cancellation drops its reminders)
    fires: tuple[str, ...] = ()  # what its JetStream message schedules publish (the server does)
    uses_nats: bool = True


def _each(*prefixes: str) -> tuple[str, ...]:
    """A consumer's filters for saga subjects `<prefix>.<booking_id>`."""
    return tuple(f"{prefix}.*" for prefix in prefixes)


def _any(*prefixes: str) -> tuple[str, ...]:
    """A publisher's subjects `<prefix>.<booking_id>` (a permission pattern)."""
    return tuple(f"{prefix}.>" for prefix in prefixes)


MAP: dict[str, Messaging] = {
    "booking_svc": Messaging(
        consumes=(
            Consumer(
                s.SAGA_STREAM,
                s.BOOKING_CONSUMER,
                _each(
                    s.PLACES_DECIDED,
                    s.PLACES_RELEASED,
                    s.PLACES_OFFERED,
                    s.PLACES_EXPIRED,
                    s.DISCOUNT_DECIDED,
                    s.QUOTA_RELEASED,
                    s.PLACES_MOVED,
                    s.DOCTOR_UNAVAILABLE,
                ),
            ),
        ),
        produces=(
            s.EVENTS_SUBJECTS,
            *_any(
                s.PLACES_REQUESTED,
                s.PLACES_RELEASE,
                s.PLACES_ACCEPT,
                s.PLACES_MOVE,
                s.DISCOUNT_REQUESTED,
                s.QUOTA_RELEASE,
                s.PATIENT_NO_SHOW,
            ),
        ),
        reads=(s.VISITS_STREAM,),  # no-shows: was the booking checked in?
    ),
    "discount_svc": Messaging(
        consumes=(
            Consumer(
                s.SAGA_STREAM,
                s.DISCOUNT_CONSUMER,
                _each(s.PLACES_RESERVED, s.DISCOUNT_REQUESTED, s.QUOTA_RELEASE),
            ),
        ),
        produces=_any(s.DISCOUNT_DECIDED, s.QUOTA_RELEASED),
    ),
    "notification_svc": Messaging(
        consumes=(
            Consumer(s.EVENTS_STREAM, s.NOTIFICATION_CONSUMER, (s.EVENTS_SUBJECTS,)),
            Consumer(s.NOTIFY_STREAM, s.SEND_CONSUMER, (f"{s.SEND}.>",)),
            Consumer(s.REMINDERS_STREAM, s.REMINDER_CONSUMER, (f"{s.REMINDER_DUE}.>",)),
            Consumer(s.VISITS_STREAM, s.VISIT_NOTIFY_CONSUMER, (s.VISITS_SUBJECTS,)),
        ),
        produces=_any(s.SEND, s.REMINDER_SCHEDULE),
        hears=(s.EVENTS_SUBJECTS, s.VISITS_SUBJECTS),
        reads=(s.EVENTS_STREAM, s.REMINDERS_STREAM),  # histories; the schedule a reminder replaces
        purges=(s.REMINDERS_STREAM,),
        fires=_any(s.REMINDER_DUE),
    ),
    "frontdesk_svc": Messaging(  # publishes queue changes, reads them back by subject, hears them live
        produces=(s.VISITS_SUBJECTS,),
        hears=(s.VISITS_SUBJECTS,),
        reads=(s.VISITS_STREAM,),
    ),
    "schedule_svc": Messaging(
        consumes=(
            Consumer(
                s.SAGA_STREAM,
                s.SCHEDULE_CONSUMER,
                _each(
                    s.PLACES_REQUESTED, s.PLACES_RELEASE, s.PLACES_ACCEPT, s.PLACES_MOVE, s.PATIENT_NO_SHOW
                ),
            ),
        ),
        produces=_any(
            s.PLACES_DECIDED,
            s.PLACES_RESERVED,
            s.PLACES_RELEASED,
            s.PLACES_OFFERED,
            s.PLACES_EXPIRED,
            s.PLACES_MOVED,
            s.DOCTOR_UNAVAILABLE,
        ),
    ),
    "gateway": Messaging(uses_nats=False),  # the edge never touches NATS
    "fhir_svc": Messaging(uses_nats=False),  # nor does the FHIR facade (gRPC calls only)
}


def consumer(durable: str) -> Consumer:
    """The durable consumer `durable`: its stream and filter subjects."""
    for messaging in MAP.values():
        for found in messaging.consumes:
            if found.durable == durable:
                return found
    raise KeyError(durable)
