"""frontdesk_svc's use cases: check in, read and watch a queue, call, complete, no-show."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext

from clinic.v1 import frontdesk_pb2
from clinic_common.clock import Clock, clinic_day
from clinic_common.errors import AlreadyExists, FailedPrecondition, NotFound
from clinic_common.logs import get_logger
from clinic_common.principal import Principal

from . import domain
from .booking_client import BookingClient
from .events import QueueHistory, Relay
from .hub import QueueHub
from .store import QueueStore, tag
from .watch import watch_queue

log = get_logger(__name__)


class FrontDesk:
    def __init__(
        self,
        store: QueueStore,
        relay: Relay,
        bookings: BookingClient,
        hub: QueueHub,
        js: JetStreamContext,
        tz: ZoneInfo,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._relay = relay
        self._bookings = bookings
        self._hub = hub
        self._js = js
        self._tz = tz
        self._clock = clock or Clock()

    def _today(self):
        return clinic_day(self._clock.now(), self._tz)

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    async def check_in(self, booking_id: str, who: Principal) -> frontdesk_pb2.Visit:
        domain.require_id("booking_id", booking_id)
        booking = await self._bookings.get(booking_id, who)  # NOT_FOUND, PERMISSION_DENIED
        domain.require_check_in(booking, self._today())
        queue = domain.QueueId(booking.doctor_id, booking.appointment_date)
        visit = frontdesk_pb2.Visit(
            booking_id=booking.id,
            patient_id=booking.patient.id,
            doctor_id=booking.doctor_id,
            date=booking.appointment_date,
            token=booking.token,
        )
        outcome = await self._store.check_in(queue, visit, uuid.uuid4().hex, self._now_ms(), _actor(who))
        if outcome.leaving:
            raise FailedPrecondition(
                f"booking {booking_id} is being rescheduled (or was moved) away from this queue; "
                "read it again and check in where it is now"
            )
        if not outcome.changed:
            raise AlreadyExists(
                f"booking {booking_id} is already checked in (position {outcome.visit.position})"
            )
        await self._publish(queue, outcome.sequence)
        log.info("visit.checked_in", booking_id=booking_id, position=outcome.visit.position)
        return outcome.visit

    async def queue(self, doctor_id: str, day: str, who: Principal) -> tuple[int, list[frontdesk_pb2.Visit]]:
        queue = domain.queue_id(doctor_id, day, self._today())
        sequence, visits = await self._store.snapshot(queue)
        return sequence, [domain.for_viewer(v, _viewer(who)) for v in visits]

    async def watch(
        self, doctor_id: str, day: str, after_sequence: int, who: Principal
    ) -> AsyncIterator[frontdesk_pb2.QueueSnapshot | frontdesk_pb2.QueueChange]:
        queue = domain.queue_id(doctor_id, day, self._today())
        viewer = _viewer(who)
        history = QueueHistory(self._js, queue)
        async for item in watch_queue(
            self._hub, history, queue, max(0, after_sequence), lambda: self._store.snapshot(queue)
        ):
            if isinstance(item, frontdesk_pb2.QueueSnapshot):
                shown = [domain.for_viewer(v, viewer) for v in item.visits]
                yield frontdesk_pb2.QueueSnapshot(visits=shown, sequence=item.sequence)
            else:
                yield frontdesk_pb2.QueueChange(
                    sequence=item.sequence,
                    kind=item.kind,
                    visit=domain.for_viewer(item.visit, viewer),
                    occurred_at=item.occurred_at,
                    actor=item.actor,
                )

    async def call_next(self, doctor_id: str, day: str, who: Principal) -> frontdesk_pb2.Visit:
        who.require_staff()
        queue = domain.queue_id(doctor_id, day, self._today())
        outcome = await self._store.transition(
            queue, "", domain.CALL, uuid.uuid4().hex, self._now_ms(), _actor(who)
        )
        if outcome is None:
            raise FailedPrecondition(f"nobody is waiting in the queue of {_name(queue)}")
        await self._publish(queue, outcome.sequence)
        log.info("visit.called", booking_id=outcome.visit.booking_id, position=outcome.visit.position)
        return outcome.visit

    async def complete(self, booking_id: str, who: Principal) -> frontdesk_pb2.Visit:
        return await self._move(booking_id, domain.COMPLETE, who)

    async def no_show(self, booking_id: str, who: Principal) -> frontdesk_pb2.Visit:
        return await self._move(booking_id, domain.NO_SHOW_MARK, who)

    async def _move(self, booking_id: str, move: domain.Transition, who: Principal) -> frontdesk_pb2.Visit:
        who.require_staff()
        domain.require_id("booking_id", booking_id)
        queue = await self._store.queue_of(booking_id)
        outcome = None
        if queue is not None:
            outcome = await self._store.transition(
                queue, booking_id, move, uuid.uuid4().hex, self._now_ms(), _actor(who)
            )
        if outcome is None:
            raise NotFound(f"booking {booking_id} has not checked in")
        if not outcome.changed:
            state = frontdesk_pb2.VisitState.Name(outcome.visit.state)
            target = frontdesk_pb2.VisitState.Name(move.to)
            raise FailedPrecondition(f"visit {booking_id} is {state}; it cannot become {target}")
        await self._publish(queue, outcome.sequence)
        log.info("visit.changed", booking_id=booking_id, state=outcome.visit.state)
        return outcome.visit

    async def _publish(self, queue: domain.QueueId, sequence: int) -> None:
        """Publish the queue's outbox now; if NATS is away, the sweep publishes it later (the change
        is stored either way, so the call still succeeds)."""
        try:
            await self._relay.flush(tag(queue), sequence)
        except Exception as exc:
            log.warning("visit.publish_deferred", queue=tag(queue), error=repr(exc))
            await self._store.mark_pending(tag(queue))


def _actor(who: Principal) -> tuple[str, str]:
    """The verified caller, for the change's `actor` (never anything from the request)."""
    return who.sub, who.role


def _viewer(who: Principal) -> str | None:
    return None if who.is_staff else who.sub


def _name(queue: domain.QueueId) -> str:
    return f"{queue.doctor_id or 'the general queue'} on {queue.day}"
