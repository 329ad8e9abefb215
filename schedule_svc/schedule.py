"""schedule_svc's use cases: the registry, doctors and their days, and the saga's places step."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import common_pb2, doctor_pb2, patient_pb2, saga_pb2
from clinic_common import subjects
from clinic_common.catalog import Catalog
from clinic_common.clock import Clock, clinic_day
from clinic_common.errors import AlreadyExists, InvalidArgument, NotFound
from clinic_common.logs import get_logger
from clinic_common.principal import Principal
from clinic_common.timeutil import to_timestamp

from . import domain
from .places import PlacesStore, Request
from .store import DoctorStore, RegistryStore

log = get_logger(__name__)

Publish = Callable[[str, bytes, str], Awaitable[None]]  # subject, payload, msg id

REFUSALS = {
    "doctor": (common_pb2.REJECTION_REASON_DOCTOR_UNAVAILABLE, "The doctor is not available on that date"),
    "capacity": (
        common_pb2.REJECTION_REASON_CAPACITY_UNAVAILABLE,
        "No capacity left on the appointment date",
    ),
    "slot": (
        common_pb2.REJECTION_REASON_SLOT_UNAVAILABLE,
        "That time is outside the doctor's hours or taken",
    ),
    "closed": (common_pb2.REJECTION_REASON_TIMED_OUT, "The booking ended before its places were reserved"),
    "busy": (
        common_pb2.REJECTION_REASON_PATIENT_BUSY,
        "The patient has another booking at an overlapping time",
    ),
}
WAITING_STATES = frozenset({"waiting", "offered", "expired", "left"})  # a waitlisted booking's holds
ANNOUNCE_AFTER_MS = 2000  # an offer or expiry still unpublished after this is published by the sweeper
KEEP_SWEEPING_DAYS = 2  # a date leaves the sweeper's index this many days after it


class Registry:
    def __init__(self, store: RegistryStore, country_code: str, tz: ZoneInfo, clock: Clock | None = None):
        self._store = store
        self._country_code = country_code
        self._tz = tz
        self._clock = clock or Clock()

    async def register(
        self, req: patient_pb2.RegisterPatientRequest, who: Principal
    ) -> tuple[common_pb2.Patient, bool]:
        who.require_staff()
        bad, phone = domain.validate_registration(req, self._country_code, self._today())
        if bad:
            raise InvalidArgument(bad)
        patient = common_pb2.Patient(
            id=f"p-{uuid.uuid4().hex[:12]}",
            name=req.name.strip(),
            gender=req.gender,
            date_of_birth=req.date_of_birth,
            phone=phone,
            email=domain.normalise_email(req.email),
            contact=req.contact,
        )
        created, patient_id = await self._store.register(patient)
        if created:
            log.info("patient.registered", patient_id=patient_id)
            return patient, True
        existing = await self._store.get(patient_id)
        if existing is None:  # the phone index names a patient that is not there: never written so
            raise NotFound(f"patient {patient_id} not found")
        return existing, False

    async def get(self, patient_id: str, who: Principal) -> common_pb2.Patient:
        if not patient_id or len(patient_id) > domain.MAX_ID_LEN:
            raise InvalidArgument([("patient_id", "must be a patient id")])
        who.require_patient_access(patient_id)
        patient = await self._store.get(patient_id)
        if patient is None:
            raise NotFound(f"patient {patient_id} not found")
        return patient

    async def count_no_show(self, patient_id: str, booking_id: str) -> None:
        await self._store.count_no_show(patient_id, booking_id)

    async def find(self, phone: str, email: str, who: Principal) -> list[common_pb2.Patient]:
        who.require_staff()
        if phone and email:
            raise InvalidArgument([("phone", "give a phone or an email, not both")])
        if phone:
            normalised = domain.normalise_phone(phone, self._country_code)
            if normalised is None:
                raise InvalidArgument(
                    [("phone", "is not a phone number (digits, optionally with +country code)")]
                )
            return await self._store.by_phone(normalised)
        if email:
            if len(email) > domain.MAX_EMAIL_LEN:
                raise InvalidArgument([("email", f"at most {domain.MAX_EMAIL_LEN} characters")])
            return await self._store.by_email(domain.normalise_email(email))
        raise InvalidArgument([("phone", "give a phone or an email to search by")])

    def _today(self):
        return clinic_day(self._clock.now(), self._tz)


class Doctors:
    def __init__(
        self,
        doctors: DoctorStore,
        places: PlacesStore,
        catalog: Catalog,
        tz: ZoneInfo,
        clock: Clock | None = None,
    ) -> None:
        self._doctors = doctors
        self._places = places
        self._catalog = catalog
        self._tz = tz
        self._clock = clock or Clock()

    async def create(self, req: doctor_pb2.CreateDoctorRequest, who: Principal) -> doctor_pb2.Doctor:
        who.require_admin()
        bad, doctor = domain.validate_doctor(req, self._catalog)
        if bad:
            raise InvalidArgument(bad)
        doctor.id = f"d-{uuid.uuid4().hex[:10]}"
        stored = await self._doctors.create(doctor)
        if stored != doctor.id:
            raise AlreadyExists(f"doctor code {req.code!r} is taken (doctor {stored})")
        log.info("doctor.created", doctor_id=doctor.id)
        return doctor

    async def list(self, service_id: str, specialty: str) -> list[doctor_pb2.Doctor]:
        if len(service_id) > domain.MAX_ID_LEN:
            raise InvalidArgument([("service_id", f"at most {domain.MAX_ID_LEN} characters")])
        if len(specialty) > domain.MAX_SPECIALTY_LEN:
            raise InvalidArgument([("specialty", f"at most {domain.MAX_SPECIALTY_LEN} characters")])
        return [
            d
            for d in await self._doctors.all()
            if (not service_id or service_id in d.service_ids)
            and (not specialty or d.specialty.lower() == specialty.lower())
        ]

    async def get(self, doctor_id: str, field: str = "doctor_id") -> doctor_pb2.Doctor:
        if not doctor_id or len(doctor_id) > domain.MAX_ID_LEN:
            raise InvalidArgument([(field, "must be a doctor id")])
        doctor = await self._doctors.get(doctor_id)
        if doctor is None:
            raise NotFound(f"doctor {doctor_id} not found")
        return doctor

    async def set_availability(
        self, req: doctor_pb2.SetAvailabilityRequest, who: Principal
    ) -> doctor_pb2.DoctorDay:
        who.require_staff()
        bad = domain.validate_availability(req, self._today())
        if bad:
            raise InvalidArgument(bad)
        doctor = await self.get(req.doctor_id)
        fields: dict[str, str | int] = {
            "present": "1" if (not req.HasField("present") or req.present) else "0"
        }
        if req.note:
            fields["note"] = req.note
        if req.HasField("daily_capacity"):
            fields["capacity"] = req.daily_capacity
        start = domain.parse_hhmm(req.day_start) if req.HasField("day_start") else None
        end = domain.parse_hhmm(req.day_end) if req.HasField("day_end") else None
        effective_start = start if start is not None else domain.parse_hhmm(doctor.day_start)
        effective_end = end if end is not None else domain.parse_hhmm(doctor.day_end)
        if effective_end <= effective_start:
            raise InvalidArgument(
                [("day_end", f"must be after the day's start ({domain.hhmm(effective_start)})")]
            )
        if start is not None:
            fields["start"] = start
        if end is not None:
            fields["end"] = end
        await self._places.set_day(req.date, doctor.id, fields)
        log.info("doctor.availability_set", doctor_id=doctor.id, date=req.date, present=fields["present"])
        return await self._view(doctor, req.date)

    async def day(self, doctor_id: str, day: str) -> doctor_pb2.DoctorDay:
        day = day or self._today().isoformat()
        bad = domain.check_day(day, self._today())
        if bad and "before today" not in bad[0][1]:  # past days can be looked at
            raise InvalidArgument(bad)
        return await self._view(await self.get(doctor_id), day)

    async def _view(self, doctor: doctor_pb2.Doctor, day: str) -> doctor_pb2.DoctorDay:
        state = await self._places.day(day, doctor.id)
        plan = domain.plan_for(doctor, state.override)
        waitlisted = await self._places.waitlisted(day, doctor.id)
        return domain.day_view(doctor, day, plan, state.tokens_held, state.intervals, waitlisted)

    def _today(self):
        return clinic_day(self._clock.now(), self._tz)


class Places:
    """The saga's first step: reserve a booking's places, or give them back (compensation); and the
    waitlist: a freed place is offered to the first waiting booking that fits, which accepts it in
    time or loses it to the next in line."""

    def __init__(
        self,
        places: PlacesStore,
        doctors: DoctorStore,
        catalog: Catalog,
        publish: Publish,
        *,
        offer_s: int = 900,
        tz: ZoneInfo | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._places = places
        self._doctors = doctors
        self._catalog = catalog
        self._publish = publish
        self._offer_ms = offer_s * 1000
        self._tz = tz or ZoneInfo("Asia/Kolkata")
        self._clock = clock or Clock()

    async def on_requested(self, req: saga_pb2.PlacesRequested) -> None:
        request, defaults = await self._request(req)
        capacities = [self._catalog.services[s].daily_capacity for s in req.service_ids]
        outcome = await self._places.reserve(request, capacities, defaults, waitlist=req.waitlist)
        decided = saga_pb2.PlacesDecided(booking_id=req.booking_id, reserved=outcome.state == "held")
        if decided.reserved:
            decided.token = outcome.token
            decided.message = _reserved_message(outcome.token, req)
        elif outcome.state in WAITING_STATES:  # a redelivery finds it further on: booking_svc ignores it
            decided.waitlisted = True
            decided.waitlist_position = outcome.position
            decided.reason = REFUSALS.get(outcome.reason, REFUSALS["capacity"])[0]
            decided.message = f"No place free: waiting in line at position {outcome.position}"
        else:
            decided.reason, decided.message = REFUSALS.get(outcome.reason, REFUSALS["closed"])
        log.info("places.decided", booking_id=req.booking_id, state=outcome.state, reason=outcome.reason)
        await self._answer(decided, req, "")

    async def on_release_requested(self, req: saga_pb2.PlacesReleaseRequested) -> None:
        request, _ = await self._request(req.places)
        outcome, offered = await self._places.release_offering(request, self._now_ms(), self._offer_ms)
        log.info(
            "places.release",
            booking_id=req.booking_id,
            outcome=outcome,
            reason=req.reason,
            offered_to=offered,
        )
        released = saga_pb2.PlacesReleased(booking_id=req.booking_id, freed=outcome == "released")
        await self._publish(
            subjects.saga_subject(subjects.PLACES_RELEASED, req.booking_id),
            released.SerializeToString(),
            # the places a reschedule took are released under their own id ("<booking>~<move>")
            f"{req.booking_id}:places.released" + request.booking_id.removeprefix(req.booking_id),
        )
        if offered:
            await self._announce(request.day, f"o:{offered}")

    async def on_accept(self, req: saga_pb2.PlacesAccept) -> None:
        """The patient took the offer: its places become held unless it ran out first."""
        state, token = await self._places.accept(req.appointment_date, req.booking_id, self._now_ms())
        decided = saga_pb2.PlacesDecided(booking_id=req.booking_id, reserved=state == "held", token=token)
        if decided.reserved:
            decided.message = "Offered places reserved" + (f": token {token}" if token else "")
        else:
            decided.reason = common_pb2.REJECTION_REASON_OFFER_EXPIRED
            decided.message = "The waitlist offer expired before it was accepted"
        log.info("places.accept", booking_id=req.booking_id, state=state)
        await self._answer(decided, req, ".accept")

    async def on_move(self, move: saga_pb2.PlacesMove) -> None:
        """A reschedule: the target places all or nothing first; only once they are held are the
        current ones released (and offered on to the waitlist, as a cancellation's are). Each step
        is idempotent per holder, so a redelivery after a crash between them ends the same way."""
        target, defaults = await self._request(move.target)
        current, _ = await self._request(move.current)
        capacities = [self._catalog.services[s].daily_capacity for s in move.target.service_ids]
        replaces = current.booking_id if current.day == target.day else ""
        outcome = await self._places.reserve(target, capacities, defaults, replaces=replaces)
        moved = saga_pb2.PlacesMoved(
            booking_id=move.booking_id, number=move.number, moved=outcome.state == "held"
        )
        offered = ""
        if moved.moved:
            state, offered = await self._places.release_offering(current, self._now_ms(), self._offer_ms)
            moved.token = outcome.token
            moved.message = _reserved_message(outcome.token, move.target).replace("Places reserved", "Moved")
        else:
            moved.reason, moved.message = REFUSALS.get(outcome.reason, REFUSALS["closed"])
            state = "kept"
        log.info(
            "places.move",
            booking_id=move.booking_id,
            move=move.number,
            outcome=outcome.state,
            reason=outcome.reason,
            current=state,
            offered_to=offered,
        )
        await self._publish(
            subjects.saga_subject(subjects.PLACES_MOVED, move.booking_id),
            moved.SerializeToString(),
            f"{move.booking_id}:places.moved.{move.number}",
        )
        if offered:
            await self._announce(current.day, f"o:{offered}")

    async def _answer(
        self,
        decided: saga_pb2.PlacesDecided,
        req: saga_pb2.PlacesRequested | saga_pb2.PlacesAccept,
        step: str,
    ) -> None:
        """Held places go straight on to discount_svc when the request carries its discount part
        (saga.places.reserved); anything else (refused, waitlisted, an older request) answers
        booking_svc (saga.places.decided). A redelivered request gets the same answer, same id."""
        if decided.reserved and req.HasField("discount"):
            decided.discount.CopyFrom(req.discount)
            prefix, kind = subjects.PLACES_RESERVED, "places.reserved"
        else:
            prefix, kind = subjects.PLACES_DECIDED, "places.decided"
        await self._publish(
            subjects.saga_subject(prefix, req.booking_id),
            decided.SerializeToString(),
            f"{req.booking_id}:{kind}{step}",
        )

    async def sweep(self) -> int:
        """End offers past their time (passing the places on) and publish what a crash left
        unpublished. Run by every instance: each step is compare-and-set in a script."""
        now_ms = self._now_ms()
        today = self._clock.now().astimezone(self._tz).date()
        days = await self._places.waitlist_days()
        await self._places.forget_days(
            [d for d in days if d < (today - timedelta(days=KEEP_SWEEPING_DAYS)).isoformat()]
        )
        expired = 0
        for day in days:
            for booking_id in await self._places.offers_due(day, now_ms):
                state, offered = await self._places.expire_offer(day, booking_id, now_ms, self._offer_ms)
                if state != "expired":
                    continue  # accepted, cancelled or swept by another instance meanwhile
                expired += 1
                log.info("places.offer_expired", booking_id=booking_id, offered_next=offered)
                await self._announce(day, f"x:{booking_id}")
                if offered:
                    await self._announce(day, f"o:{offered}")
            for member in await self._places.unannounced(day, now_ms - ANNOUNCE_AFTER_MS):
                await self._announce(day, member)
        return expired

    async def _announce(self, day: str, member: str) -> None:
        """Publish an offer (`o:<id>`) or an expiry (`x:<id>`), then strike it from the day's list."""
        kind, _, booking_id = member.partition(":")
        if kind == "x":
            await self._publish(
                subjects.saga_subject(subjects.PLACES_EXPIRED, booking_id),
                saga_pb2.OfferExpired(booking_id=booking_id).SerializeToString(),
                f"{booking_id}:places.expired",
            )
        else:
            offer = await self._places.offer_to_announce(day, booking_id, self._now_ms(), self._offer_ms)
            if offer.state == "offered":  # accepted (held) or ended since: nothing left to tell
                expires = datetime.fromtimestamp(offer.expires_ms / 1000, UTC)
                message = saga_pb2.PlacesOffered(
                    booking_id=booking_id,
                    offer_expires_at=to_timestamp(expires),
                    token=offer.token,
                    message="A place is free for you"
                    + (f" (token {offer.token})" if offer.token else "")
                    + f"; accept it before {expires.astimezone(self._tz):%H:%M} (clinic time)",
                )
                await self._publish(
                    subjects.saga_subject(subjects.PLACES_OFFERED, booking_id),
                    message.SerializeToString(),
                    f"{booking_id}:places.offered",
                )
                log.info("places.offered", booking_id=booking_id, token=offer.token)
        await self._places.announced(day, member)

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    async def _request(self, req: saga_pb2.PlacesRequested) -> tuple[Request, tuple[int, int, int]]:
        start = end = -1
        defaults = (0, 0, 0)
        if req.doctor_id:
            doctor = await self._doctors.get(req.doctor_id)
            if doctor is None:
                raise NotFound(f"doctor {req.doctor_id} not found")
            defaults = (
                doctor.daily_capacity,
                domain.parse_hhmm(doctor.day_start),
                domain.parse_hhmm(doctor.day_end),
            )
            if req.start_time:
                start = domain.parse_hhmm(req.start_time)
                end = start + (req.duration_minutes or doctor.slot_minutes)
        for service_id in req.service_ids:
            if service_id not in self._catalog.services:
                raise NotFound(f"service {service_id} is not in the catalog")
        request = Request(
            req.holder or req.booking_id,
            req.appointment_date,
            list(req.service_ids),
            req.doctor_id,
            start,
            end,
            req.patient_id,
        )
        return request, defaults


def _reserved_message(token: int, req: saga_pb2.PlacesRequested) -> str:
    details = [f"token {token}"] if token else []
    if req.start_time:
        details.append(f"at {req.start_time} for {req.duration_minutes} min")
    return "Places reserved" + (": " + ", ".join(details) if details else "")
