"""booking_svc's use cases: plain async code over the store, the outbox publisher and the clock."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import admin_pb2, booking_pb2, common_pb2, doctor_pb2, saga_pb2
from clinic_common import metrics, tracing
from clinic_common.catalog import Catalog
from clinic_common.clock import Clock, parse_date
from clinic_common.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from clinic_common.logs import get_logger
from clinic_common.principal import Principal
from clinic_common.validate import TOKEN_ID, full, is_id

from . import domain, payments, reports
from . import store as stores
from .leaving import CHECKED_IN, HELD_ELSEWHERE, TAKEN, LeavingMarks
from .schedule_client import ScheduleClient
from .store import BookingStore, outbox_id

log = get_logger(__name__)

Publish = Callable[[saga_pb2.OutboxMessage], Awaitable[None]]

MAX_LIST_SCANS = 20
LIST_CHUNK = 100
DEFAULT_PAGE_SIZE = 20
CAS_ATTEMPTS = 20
RECORD_CACHE = 10_000
REFERENCE_ATTEMPTS = 8
PUBLISH_WAIT_S = 0.5  # how long CreateBooking waits for its first event to be in the stream


class Bookings:
    def __init__(
        self,
        store: BookingStore,
        publish: Publish,
        catalog: Catalog,
        tz: ZoneInfo,
        *,
        timeout_s: int,
        max_pending: int = 0,
        clock: Clock | None = None,
        bus_ready: Callable[[], bool] = lambda: True,
        schedule: ScheduleClient | None = None,
        country_code: str = "91",
        cancel_notice_hours: int = 0,
        refund_policy: str = "full",
        durable_money: bool = True,
        new_reference: Callable[[], str] = payments.new_reference,
    ) -> None:
        self._store = store
        self._publish = publish
        self._catalog = catalog
        self._tz = tz
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._clock = clock or Clock()
        self._bus_ready = bus_ready
        self._schedule = schedule
        self._country_code = country_code
        self._notice_hours = cancel_notice_hours
        self._refund_policy = refund_policy
        self._durable_money = durable_money
        self._new_reference = new_reference
        self._leaving = LeavingMarks(store.redis)
        # Records this instance wrote or read last. Only a hint: every commit is compare-and-set
        # on the stored version, and a "nothing to do" or "cannot apply" verdict is re-checked on
        # the stored record (another instance may have moved the booking on since).
        self._records: OrderedDict[str, saga_pb2.BookingRecord] = OrderedDict()
        self._publishing: set[asyncio.Task] = set()

    # -- API ------------------------------------------------------------------------------------

    def list_services(self, gender: int) -> list[common_pb2.MedicalService]:
        return [s.to_proto(self._catalog.currency) for s in self._catalog.offered(gender)]

    async def create(self, req: booking_pb2.CreateBookingRequest, who: Principal) -> common_pb2.Booking:
        if req.HasField("patient") and req.patient.id:
            who.require_patient_access(req.patient.id)
        patient, doctor = await self._resolve(req, who)
        now = self._clock.now()
        trace = tracing.current() or tracing.new_traceparent()
        booking_id = uuid.uuid4().hex
        draft = functools.partial(
            domain.create, req, self._catalog, booking_id, now, self._tz, trace, doctor, patient
        )
        if not self._bus_ready():
            draft(country_code=self._country_code)  # 400 first
            raise Unavailable("NATS unavailable: booking not stored, try again")
        for _ in range(REFERENCE_ATTEMPTS):  # a drawn reference already taken: draw again
            t = draft(self._new_reference(), actor=_actor(who), country_code=self._country_code)
            stored_id = await self._store.create(t, _ms(now), self._max_pending)
            if stored_id != stores.REFERENCE_TAKEN:
                break
        else:
            raise Unavailable("could not draw a free booking reference; try again")
        if not stored_id:  # shed load at the door rather than queue sagas for minutes
            metrics.BOOKINGS_SHED.inc()
            raise ResourceExhausted(
                f"{self._max_pending} bookings are already in progress; retry in a moment",
                retry_after_s=1.0,
            )
        if stored_id != t.record.booking.id:  # lost a race with the same request id
            return await self._same_request(stored_id, t.record, who)
        self._remember(t.record)
        log.info("booking.created", booking_id=stored_id, patient_id=req.patient.id)
        # Stored with its outbox, the booking is safe. Its first event is normally in the stream
        # within a millisecond, before the answer, so a watch started right away finds it. A
        # stream without a leader (a NATS node lost, 4-9 s of raft election) must not hold up
        # intake, though: after PUBLISH_WAIT_S the answer goes out and the publish carries on
        # beside it (watchers meanwhile get UNAVAILABLE from that stream, not NOT_FOUND).
        publishing = self._in_background(self._flush(outbox_id(t.record), t.outbox))
        await asyncio.wait({publishing}, timeout=PUBLISH_WAIT_S)
        return t.record.booking

    async def get(self, booking_id: str, who: Principal) -> common_pb2.Booking:
        record = await self._load(await self._resolve_id(booking_id))
        who.require_patient_access(record.booking.patient.id)
        return record.booking

    async def _resolve_id(self, id_or_reference: str) -> str:
        """A booking id, or the id of the booking a reference names (NOT_FOUND for an unknown one)."""
        reference = payments.normalise_reference(id_or_reference)
        if not reference:
            return id_or_reference
        found = await self._store.id_for_reference(reference)
        if found is None:
            raise NotFound(f"no booking has the reference {reference}")
        return found

    # -- money ------------------------------------------------------------------------------------

    async def _money(
        self, req, who: Principal, validate: Callable, apply: Callable, done: str
    ) -> common_pb2.Booking:
        """A payment or refund (`req` checked by `validate`, entered by `apply`), on the disk before
        the answer. A retry that finds its entry recorded commits nothing, but still waits for the
        fsync: the first try may have died before its own."""
        bad = validate(req, self._catalog.currency)
        if bad:
            raise InvalidArgument(bad)
        booking_id = await self._resolve_id(req.booking_id)
        self._records.pop(booking_id, None)  # judge money on the stored record only
        committed = await self._transition(
            booking_id, lambda r: apply(r, req, self._clock.now(), _actor(who)), durable=self._durable_money
        )
        if committed is None:
            if self._durable_money:
                await self._store.sync()
            committed = await self._load(booking_id)
        log.info(f"booking.payment_{done}", booking_id=booking_id, amount_minor=req.amount.amount_minor)
        return committed.booking

    async def record_payment(
        self, req: booking_pb2.RecordPaymentRequest, who: Principal
    ) -> common_pb2.Booking:
        who.require_staff()
        return await self._money(req, who, payments.validate_payment, payments.record_payment, "recorded")

    async def refund_payment(
        self, req: booking_pb2.RefundPaymentRequest, who: Principal
    ) -> common_pb2.Booking:
        who.require_admin()
        return await self._money(req, who, payments.validate_refund, payments.refund_payment, "refunded")

    async def day_summary(self, day: str, who: Principal) -> admin_pb2.DaySummary:
        who.require_admin()
        if not day:
            day = self._clock.now().astimezone(self._tz).date().isoformat()
        else:
            try:
                parse_date(day)
            except ValueError as exc:
                raise InvalidArgument([("date", str(exc))]) from None
        records = await self._day_records(day)
        doctors = {r.booking.doctor_id for r in records if r.booking.doctor_id}
        capacities = await self._capacities(day, doctors, who)
        return reports.day_summary(day, records, self._catalog.currency, capacities)

    async def _day_records(self, day: str) -> list[saga_pb2.BookingRecord]:
        return [record async for record in self._store.day_records(day, LIST_CHUNK)]

    async def _capacities(self, day: str, doctor_ids: set[str], who: Principal) -> dict[str, int]:
        if self._schedule is None:
            return {}
        found = {}
        for doctor_id in sorted(doctor_ids):
            capacity = await self._schedule.day_capacity(doctor_id, day, who)
            if capacity is not None:
                found[doctor_id] = capacity
        return found

    async def list(
        self, req: booking_pb2.ListBookingsRequest, who: Principal
    ) -> tuple[list[common_pb2.Booking], str]:
        """Newest first. Patients list their own; staff and admin may filter by date (or a range of
        dates, earliest day first), doctor, status and reference."""
        bad = domain.validate_list(req)
        ranged = bool(req.date_from or req.date_to)
        if ranged and not who.is_staff:
            bad.append(("date_from" if req.date_from else "date_to", "date ranges are for staff and admin"))
        if ranged and not (req.date_from and req.date_to) and not (req.patient_id or req.doctor_id):
            bad.append(("date_to" if req.date_from else "date_from", "a range needs both ends"))
        chosen = req.patient_id or req.date or req.doctor_id or req.reference or ranged
        if not req.patient_id and not (who.is_staff and chosen):
            bad.append(
                (
                    "patient_id",
                    "must not be empty"
                    if not who.is_staff
                    else "give patient_id, date, date_from/date_to, doctor_id or reference",
                )
            )
        if bad:
            raise InvalidArgument(bad)
        if req.patient_id:
            who.require_patient_access(req.patient_id)
        size = req.page_size or DEFAULT_PAGE_SIZE
        if req.reference:
            return await self._by_reference(req), ""
        if req.patient_id or req.doctor_id or req.date or not ranged:
            if req.patient_id:
                index = stores.patient_key(req.patient_id)
            elif req.doctor_id:
                index = stores.doctor_key(req.doctor_id)
            else:
                index = stores.date_key(req.date)
            found, after, more = await self._scan(index, stores.after_id(req.page_token), req, size)
            return found, stores.page_token(after) if more else ""
        return await self._list_range(req, size)

    async def _by_reference(self, req: booking_pb2.ListBookingsRequest) -> list[common_pb2.Booking]:
        reference = payments.normalise_reference(req.reference)
        booking_id = await self._store.id_for_reference(reference) if reference else None
        record = await self._store.load(booking_id) if booking_id else None
        if record is None or not domain.matches(record.booking, req):
            return []
        return [record.booking]

    async def _list_range(
        self, req: booking_pb2.ListBookingsRequest, size: int
    ) -> tuple[list[common_pb2.Booking], str]:
        """Day by day from date_from; a page token names the day and the last booking of it."""
        day, _, after = stores.after_id(req.page_token).partition("|")
        day = day or req.date_from
        if req.page_token and not req.date_from <= day <= req.date_to:
            raise InvalidArgument([("page_token", "not a token from a previous page")])
        found: list[common_pb2.Booking] = []
        current = parse_date(day)
        last = parse_date(req.date_to)
        while current <= last:
            iso = current.isoformat()
            page, after, more = await self._scan(stores.date_key(iso), after, req, size - len(found))
            found += page
            if more:
                return found, stores.page_token(f"{iso}|{after}")
            current += timedelta(days=1)
            after = ""
            if len(found) == size:
                return found, stores.page_token(f"{current.isoformat()}|") if current <= last else ""
        return found, ""

    async def _scan(
        self, index: str, after: str, req: booking_pb2.ListBookingsRequest, size: int
    ) -> tuple[list[common_pb2.Booking], str, bool]:
        """Up to `size` matching bookings of one index after `after`: (found, last id read, more?)."""
        found: list[common_pb2.Booking] = []
        for _ in range(MAX_LIST_SCANS):  # filters may skip many: read a bounded number of chunks
            ids = await self._store.ids_after(index, after, LIST_CHUNK)
            records = {r.booking.id: r.booking for r in await self._store.load_many(ids)}
            for i, booking_id in enumerate(ids):
                after = booking_id
                booking = records.get(booking_id)
                if booking is None or not domain.matches(booking, req):
                    continue
                found.append(booking)
                if len(found) == size:
                    more = i < len(ids) - 1 or bool(await self._store.ids_after(index, after, 1))
                    return found, after, more
            if len(ids) < LIST_CHUNK:
                return found, after, False
        return found, after, True  # a short page: the caller goes on from here

    async def cancel(self, booking_id: str, reason: str, who: Principal) -> common_pb2.Booking:
        looks_like_id = is_id(booking_id, TOKEN_ID) or payments.normalise_reference(booking_id)
        bad = [] if looks_like_id else [("booking_id", "must be a booking id or reference")]
        if len(reason) > domain.MAX_REASON_LEN:
            bad.append(("reason", f"at most {domain.MAX_REASON_LEN} characters"))
        if bad:  # every bad field named at once, before anything is read
            raise InvalidArgument(bad)
        booking_id = await self._resolve_id(booking_id)
        record = await self._load(booking_id)
        who.require_patient_access(record.booking.patient.id)
        day_start = await self._day_start(record.booking, who)
        now = self._clock.now()
        late = payments.is_late(record.booking, now, self._tz, self._notice_hours, day_start)
        if late and not who.is_staff:
            raise FailedPrecondition(
                f"too late to cancel: bookings are cancelled at least {self._notice_hours} h before the"
                " start; the front desk can still cancel it"
            )

        def step(r: saga_pb2.BookingRecord) -> domain.Transition:
            t = domain.cancel(r, reason, now, _actor(who))
            payments.refund_due_on_cancel(t, late=late, policy=self._refund_policy)
            return t

        paid = payments.totals(record.booking)[0] > 0
        committed = await self._transition(booking_id, step, durable=paid and self._durable_money)
        log.info("booking.cancelled", booking_id=booking_id, late=late)
        assert committed is not None
        return committed.booking

    async def _day_start(self, b: common_pb2.Booking, who: Principal) -> str:
        """When the doctor's day starts on the booking's date, for a token without a time (only needed
        with a notice period)."""
        if not self._notice_hours or b.start_time or not b.doctor_id or self._schedule is None:
            return ""
        return (await self._schedule.day_hours(b.doctor_id, b.appointment_date, who))[0]

    async def accept_offer(self, booking_id: str, who: Principal) -> common_pb2.Booking:
        """A waitlisted booking takes its offered place; past the offer's time it ends REJECTED
        (OFFER_EXPIRED) and the caller gets FAILED_PRECONDITION."""
        record = await self._load(booking_id)
        who.require_patient_access(record.booking.patient.id)
        in_time: list[bool] = []

        def step(r: saga_pb2.BookingRecord) -> domain.Transition:
            t, ok = domain.accept_offer(r, self._clock.now(), _actor(who))
            in_time[:] = [ok]
            return t

        committed = await self._transition(booking_id, step)
        assert committed is not None
        if not in_time[0]:
            log.info("booking.offer_expired", booking_id=booking_id, via="accept")
            raise FailedPrecondition("the waitlist offer expired before it was accepted")
        log.info("booking.offer_accepted", booking_id=booking_id)
        return committed.booking

    async def reschedule(
        self, req: booking_pb2.RescheduleBookingRequest, who: Principal
    ) -> common_pb2.Booking:
        """Ask for a move (saga.places.move); the booking keeps its places until schedule_svc answers."""
        record = await self._load(req.booking_id)
        b = record.booking
        who.require_patient_access(b.patient.id)
        doctor = None
        doctor_id = req.doctor_id or b.doctor_id
        if doctor_id and len(doctor_id) <= domain.MAX_ID_LEN:
            if self._schedule is None:
                raise Unavailable("schedule_svc is not configured (SCHEDULE_SVC_ADDR)")
            doctor = await self._schedule.doctor(doctor_id, who)
        # The request's own faults first (bad fields, not movable, a move in progress), judged on the
        # record as read: a pure step, nothing stored; None: this request_id asked for a move before.
        if domain.reschedule(record, req, doctor, self._clock.now(), self._tz, _actor(who)) is None:
            return b
        token, fresh = await self._leave_queue(record, req)

        def step(r: saga_pb2.BookingRecord) -> domain.Transition | None:
            if token and _place(r.booking) != _place(b):
                raise FailedPrecondition("the booking moved meanwhile; read it again")
            return domain.reschedule(r, req, doctor, self._clock.now(), self._tz, _actor(who), token)

        try:
            committed = await self._transition(req.booking_id, step)
        except BaseException:
            if fresh:  # a mark an earlier try took stays with that try (or lapses)
                await self._unmark(b, token)
            raise
        if committed is None:  # this request_id asked for a move before: that one stands
            return (await self._load(req.booking_id)).booking
        if token:
            try:
                await self._leaving.hold(b, token)
            except Exception as exc:  # the move stands; the mark keeps its lease (docs/architecture.md)
                log.warning("booking.leaving_mark_not_held", booking_id=b.id, error=repr(exc))
        log.info("booking.reschedule_requested", booking_id=req.booking_id, move=committed.move.number)
        return committed.booking

    async def _leave_queue(
        self, record: saga_pb2.BookingRecord, req: booking_pb2.RescheduleBookingRequest
    ) -> tuple[str, bool]:
        """Take the mark that keeps the patient from checking in where the booking is leaving (refused
        if they already have): its token and whether this call took it ("" when no mark is needed:
        only a CONFIRMED booking checks in, and a stored request_id has its first answer). A request_id
        names the token, so a retry after a crash between the mark and the commit finds its own."""
        b = record.booking
        if b.status != domain.CONFIRMED or (req.request_id and req.request_id in record.move_requests):
            return "", False
        token = f"request:{req.request_id}" if req.request_id else uuid.uuid4().hex
        taken = await self._leaving.claim(b, token)
        if taken == CHECKED_IN:
            raise FailedPrecondition("the patient has checked in for this booking")
        if taken == HELD_ELSEWHERE:
            raise FailedPrecondition("a reschedule of this booking is already in progress")
        return token, taken == TAKEN

    async def _unmark(self, b: common_pb2.Booking, token: str) -> None:
        if not token:
            return
        try:
            await self._leaving.drop(b, token)
        except Exception as exc:  # the lease lapses on its own (leaving.CLAIM_LEASE_MS)
            log.warning("booking.leaving_mark_kept", booking_id=b.id, error=repr(exc))

    async def update_note(self, booking_id: str, note: str, who: Principal) -> common_pb2.Booking:
        who.require_staff()
        await self._load(booking_id)
        committed = await self._transition(
            booking_id, lambda r: domain.update_note(r, note, self._clock.now(), _actor(who))
        )
        if committed is None:
            return (await self._load(booking_id)).booking
        log.info("booking.note_changed", booking_id=booking_id)  # never the note itself
        return committed.booking

    # -- saga events ----------------------------------------------------------------------------

    async def on_places_moved(self, answer: saga_pb2.PlacesMoved) -> None:
        stored = await self._store.load(answer.booking_id)
        if stored is not None and stored.move.number == answer.number and stored.move.leaving:
            # Before the commit, so a redelivery after a crash in between settles it again.
            await self._leaving.settle(stored.booking, stored.move, answer.moved)
        record = await self._transition(
            answer.booking_id, lambda r: domain.moved(r, answer, self._clock.now())
        )
        if record is not None:
            log.info("booking.moved", booking_id=answer.booking_id, move=answer.number, moved=answer.moved)

    async def on_places_offered(self, offered: saga_pb2.PlacesOffered) -> None:
        if await self._transition(offered.booking_id, lambda r: domain.offer(r, offered, self._clock.now())):
            log.info("booking.offered", booking_id=offered.booking_id)

    async def on_offer_expired(self, expired: saga_pb2.OfferExpired) -> None:
        if await self._transition(expired.booking_id, lambda r: domain.offer_expired(r, self._clock.now())):
            log.info("booking.offer_expired", booking_id=expired.booking_id, via="sweeper")

    async def on_doctor_unavailable(self, absent: saga_pb2.DoctorUnavailable) -> None:
        if await self._transition(
            absent.booking_id, lambda r: domain.doctor_unavailable(r, absent, self._clock.now())
        ):
            log.info("booking.doctor_unavailable", booking_id=absent.booking_id, date=absent.date)

    async def on_places_decided(self, decided: saga_pb2.PlacesDecided) -> None:
        record = await self._transition(
            decided.booking_id, lambda r: domain.places_decided(r, decided, self._clock.now())
        )
        if record is not None:
            log.info("booking.places", booking_id=decided.booking_id, reserved=decided.reserved)

    async def on_places_released(self, released: saga_pb2.PlacesReleased) -> None:
        await self._transition(
            released.booking_id, lambda r: domain.places_released(r, released, self._clock.now())
        )

    async def on_discount_decided(self, decided: saga_pb2.DiscountDecided) -> None:
        record = await self._transition(
            decided.booking_id, lambda r: domain.apply_discount(r, decided, self._clock.now())
        )
        if record is not None:
            b = record.booking
            log.info(
                "booking.decided",
                booking_id=b.id,
                status=common_pb2.BookingStatus.Name(b.status),
                discount=common_pb2.DiscountOutcome.Name(b.discount.outcome),
            )

    async def on_quota_released(self, released: saga_pb2.QuotaReleased) -> None:
        await self._transition(released.booking_id, lambda r: domain.quota_released(r, self._clock.now()))

    # -- background duties ----------------------------------------------------------------------

    async def confirm_attendance(self, booking_id: str, who: Principal) -> common_pb2.Booking:
        record = await self._load(booking_id)
        who.require_patient_access(record.booking.patient.id)
        committed = await self._transition(
            booking_id, lambda r: domain.confirm_attendance(r, self._clock.now(), _actor(who))
        )
        return (committed or await self._load(booking_id)).booking

    async def release_unconfirmed(self, booking_id: str) -> bool:
        """CLINIC_CONFIRM_BY passed unconfirmed (the caller judged it): cancelled once, by the system."""
        step = lambda r: domain.release_unconfirmed(r, self._clock.now())  # noqa: E731
        return await self._transition(booking_id, step) is not None

    async def mark_no_show(self, booking_id: str) -> bool:
        """NO_SHOW once for a CONFIRMED booking never checked in (the caller judged the day over)."""
        return (
            await self._transition(booking_id, lambda r: domain.mark_no_show(r, self._clock.now()))
            is not None
        )

    async def time_out_overdue(self, limit: int = 256) -> int:
        cutoff = _ms(self._clock.now()) - self._timeout_s * 1000
        count = 0
        for booking_id in await self._store.pending_older_than(cutoff, limit):
            if await self._transition(booking_id, lambda r: domain.time_out(r, self._clock.now())):
                log.warning("booking.timed_out", booking_id=booking_id)
                count += 1
        return count

    async def relay_outbox(self, min_age_ms: int = 2000, limit: int = 256) -> int:
        """Publish what a crash (or a NATS outage) left unpublished; duplicates are dropped by id."""
        due = await self._store.outbox_due(_ms(self._clock.now()) - min_age_ms, limit)
        # Bookings side by side (a NATS outage leaves hundreds due, and a publish that fails takes
        # seconds of retries), each booking's batches in version order, stopping at its first failure.
        by_booking: dict[str, list[tuple[str, saga_pb2.OutboxBatch]]] = {}
        for batch_id, batch in due:
            by_booking.setdefault(batch_id.rpartition(":")[0], []).append((batch_id, batch))
        await asyncio.gather(*(self._relay_in_order(batches) for batches in by_booking.values()))
        if due:
            metrics.OUTBOX_RELAYED.inc(len(due))
            log.info("outbox.relayed", batches=len(due))
        return len(due)

    async def _relay_in_order(self, batches: list[tuple[str, saga_pb2.OutboxBatch]]) -> None:
        for batch_id, batch in sorted(batches, key=lambda b: int(b[0].rpartition(":")[2])):
            if not await self._flush(batch_id, list(batch.messages)):
                return  # its later versions wait for the next pass

    async def finish_publishing(self, timeout_s: float = 3.0) -> None:
        """At shutdown: let publishes started for new bookings finish (the relay covers the rest)."""
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=timeout_s)

    # -- internals ------------------------------------------------------------------------------

    def _in_background(self, work: Awaitable[None]) -> asyncio.Future:
        task = asyncio.ensure_future(work)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        return task

    async def _resolve(
        self, req: booking_pb2.CreateBookingRequest, who: Principal
    ) -> tuple[common_pb2.Patient | None, doctor_pb2.Doctor | None]:
        """The registry's patient when the request names one by id alone, and the doctor it names."""
        patient = doctor = None
        p = req.patient
        by_id_alone = p.id and not (p.name or p.gender or p.date_of_birth)
        if (by_id_alone or req.doctor_id) and self._schedule is None:
            raise Unavailable("schedule_svc is not configured (SCHEDULE_SVC_ADDR)")
        if by_id_alone and len(p.id) <= domain.MAX_ID_LEN:
            found = await self._schedule.patient(p.id, who)
            if found is None:
                raise InvalidArgument(
                    [
                        (
                            "patient.id",
                            "no registered patient has this id (register them, or give name, gender, dob)",
                        )
                    ]
                )
            patient = common_pb2.Patient(
                id=found.id, name=found.name, gender=found.gender, date_of_birth=found.date_of_birth
            )
        if req.doctor_id and len(req.doctor_id) <= domain.MAX_ID_LEN:
            doctor = await self._schedule.doctor(req.doctor_id, who)
        return patient, doctor

    async def _same_request(
        self, booking_id: str, candidate: saga_pb2.BookingRecord, who: Principal
    ) -> common_pb2.Booking:
        existing = await self._load(booking_id)
        if existing.request_fingerprint != candidate.request_fingerprint:
            raise AlreadyExists(f"request_id {candidate.booking.request_id!r} was used for another request")
        who.require_patient_access(existing.booking.patient.id)
        return existing.booking

    async def _load(self, booking_id: str) -> saga_pb2.BookingRecord:
        if not booking_id or len(booking_id) > domain.MAX_ID_LEN or not full(TOKEN_ID, booking_id):
            raise InvalidArgument([("booking_id", "must be a booking id")])
        record = await self._store.load(booking_id)
        if record is None:
            raise NotFound(f"booking {booking_id} not found")
        return record

    async def _transition(
        self,
        booking_id: str,
        step: Callable[[saga_pb2.BookingRecord], domain.Transition | None],
        *,
        durable: bool = False,
    ) -> saga_pb2.BookingRecord | None:
        """Read, decide, compare-and-set; on a lost race read again. None when nothing changed."""
        record = self._records.get(booking_id)
        stored = record is None
        for _ in range(CAS_ATTEMPTS):
            if record is None:
                record = await self._store.load(booking_id)
                stored = True
                if record is None:
                    raise NotFound(f"booking {booking_id} not found")
            try:
                t = step(record)
            except Exception:
                if stored:
                    raise
                record = None  # judge on the stored record, not a copy another instance moved on
                continue
            if t is None:
                if not stored:  # the cached copy may be behind another instance's write
                    record = None
                    continue
                self._remember(record)
                return None
            try:
                taken = await self._store.commit(t, _ms(self._clock.now()), durable=durable)
            except Conflict:
                self._records.pop(booking_id, None)
                record = None
                await asyncio.sleep(0)
                continue
            self._remember(taken.record)
            self._in_background(self._flush(outbox_id(taken.record), taken.outbox))
            if taken.leaves_pending:
                self._observe_outcome(record, taken.record)
            return taken.record
        raise Conflict(f"booking {booking_id} kept changing; giving up for now")

    def _remember(self, record: saga_pb2.BookingRecord) -> None:
        self._records[record.booking.id] = record
        self._records.move_to_end(record.booking.id)
        if len(self._records) > RECORD_CACHE:
            self._records.popitem(last=False)

    def _observe_outcome(self, before: saga_pb2.BookingRecord, after: saga_pb2.BookingRecord) -> None:
        b = after.booking
        if before.booking.status != domain.PENDING or b.status not in domain.FINAL_STATUSES:
            return
        reason = common_pb2.RejectionReason.Name(b.rejection_reason).removeprefix("REJECTION_REASON_")
        metrics.BOOKINGS.labels(
            common_pb2.BookingStatus.Name(b.status).removeprefix("BOOKING_STATUS_"), reason
        ).inc()
        seconds = b.updated_at.ToNanoseconds() / 1e9 - b.created_at.ToNanoseconds() / 1e9
        metrics.SAGA_SECONDS.observe(max(seconds, 0.0))

    async def _flush(self, batch_id: str, messages: list[saga_pb2.OutboxMessage]) -> bool:
        """Publish now; on failure the outbox keeps the batch and the relay publishes it later."""
        try:
            await asyncio.gather(*(self._publish(m) for m in messages))
        except Exception as exc:
            log.warning("outbox.publish_deferred", outbox_id=batch_id, error=repr(exc))
            return False
        self._store.outbox_done_later(batch_id)
        return True


def _actor(who: Principal) -> common_pb2.Actor:
    """The verified caller (from the gateway's token check, believed on mutual TLS only)."""
    return common_pb2.Actor(sub=who.sub, role=who.role)


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def _place(b: common_pb2.Booking) -> tuple[str, str]:
    """The check-in queue a booking belongs to."""
    return b.doctor_id, b.appointment_date
