"""schedule_svc's use cases: the registry, doctors and their days, and the saga's places step."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import common_pb2, doctor_pb2, patient_pb2, saga_pb2
from clinic_common import subjects, validate
from clinic_common.catalog import Catalog
from clinic_common.clock import Clock, clinic_day, parse_date
from clinic_common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from clinic_common.logs import get_logger
from clinic_common.principal import Principal
from clinic_common.timeutil import to_timestamp

from . import domain
from .places import Outcome, PlacesStore, Request, Resolved
from .store import DoctorStore, RegistryStore, Schedule

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
UPDATE_ATTEMPTS = 20  # compare-and-set rounds before an update gives up (ABORTED)


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
            email=validate.normalise_email(req.email),
            contact=req.contact,
        )
        if patient.contact.email and not patient.email:
            raise InvalidArgument([("contact.email", "the patient has no email address to send to")])
        created, patient_id = await self._store.register(patient)
        if created:
            log.info("patient.registered", patient_id=patient_id)
            return patient, True
        existing = await self._store.get(patient_id)
        if existing is None:  # the phone index names a patient that is not there: never written so
            raise NotFound(f"patient {patient_id} not found")
        return existing, False

    async def get(self, patient_id: str, who: Principal) -> common_pb2.Patient:
        if not validate.is_id(patient_id):
            raise InvalidArgument([("patient_id", "must be a patient id")])
        who.require_patient_access(patient_id)
        patient = await self._store.get(patient_id)
        if patient is None:
            raise NotFound(f"patient {patient_id} not found")
        return patient

    async def update(self, req: patient_pb2.UpdatePatientRequest, who: Principal) -> common_pb2.Patient:
        """The masked fields changed, compare-and-set on the stored record (retried on a lost race)."""
        if not req.patient_id or len(req.patient_id) > domain.MAX_ID_LEN:
            raise InvalidArgument([("patient_id", "must be a patient id")])
        who.require_patient_access(req.patient_id)
        for _ in range(UPDATE_ATTEMPTS):
            read = await self._store.get_raw(req.patient_id)
            if read is None:
                raise NotFound(f"patient {req.patient_id} not found")
            current = common_pb2.Patient.FromString(read)
            bad, updated = domain.apply_patient_update(current, req, self._country_code, self._today())
            if bad:
                raise InvalidArgument(bad)
            state, holder = await self._store.update(read, current, updated)
            if state == "updated":
                log.info("patient.updated", patient_id=updated.id, fields=",".join(req.update_mask.paths))
                return updated
            if state == "taken":
                raise AlreadyExists(f"that phone is registered to patient {holder}")
            if state == "missing":
                raise NotFound(f"patient {req.patient_id} not found")
        raise Conflict(f"patient {req.patient_id} kept changing; try again")

    async def count_no_show(self, patient_id: str, booking_id: str) -> None:
        await self._store.count_no_show(patient_id, booking_id)

    async def find(self, phone: str, email: str, who: Principal) -> list[common_pb2.Patient]:
        who.require_staff()
        if phone and email:
            raise InvalidArgument([("phone", "give a phone or an email, not both")])
        if phone:
            bad, normalised = validate.check_phone(phone, self._country_code)
            if bad:
                raise InvalidArgument(bad)
            return await self._store.by_phone(normalised)
        if email:
            if len(email) > validate.MAX_EMAIL_LEN:
                raise InvalidArgument([("email", f"at most {validate.MAX_EMAIL_LEN} characters")])
            return await self._store.by_email(validate.normalise_email(email))
        raise InvalidArgument([("phone", "give a phone or an email to search by")])

    def _today(self):
        return clinic_day(self._clock.now(), self._tz)


class Doctors:
    """Doctors, their weekly plans, leave and days. A date's availability is resolved in one place,
    `resolve`, for GetDoctorDay, free times, FindSlots and the reserve step alike."""

    def __init__(
        self,
        doctors: DoctorStore,
        places: PlacesStore,
        catalog: Catalog,
        tz: ZoneInfo,
        clock: Clock | None = None,
        publish: Publish | None = None,
    ) -> None:
        self._doctors = doctors
        self._places = places
        self._catalog = catalog
        self._tz = tz
        self._clock = clock or Clock()
        self._publish = publish

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

    async def update(self, req: doctor_pb2.UpdateDoctorRequest, who: Principal) -> doctor_pb2.Doctor:
        who.require_admin()
        for _ in range(UPDATE_ATTEMPTS):
            schedule = await self._schedule(req.doctor_id)
            bad, updated = domain.apply_doctor_update(schedule.doctor, req, self._catalog)
            if bad:
                raise InvalidArgument(bad)
            revision = await self._doctors.update(schedule.raw, updated)
            if revision > 0:
                updated.revision = revision
                log.info("doctor.updated", doctor_id=updated.id, fields=",".join(req.update_mask.paths))
                return updated
            if revision < 0:
                raise NotFound(f"doctor {req.doctor_id} not found")
        raise Conflict(f"doctor {req.doctor_id} kept changing; try again")

    async def list(
        self, service_id: str, specialty: str, include_retired: bool = False
    ) -> list[doctor_pb2.Doctor]:
        if len(service_id) > domain.MAX_ID_LEN:
            raise InvalidArgument([("service_id", f"at most {domain.MAX_ID_LEN} characters")])
        if len(specialty) > domain.MAX_SPECIALTY_LEN:
            raise InvalidArgument([("specialty", f"at most {domain.MAX_SPECIALTY_LEN} characters")])
        return [
            d
            for d in await self._doctors.all()
            if (not service_id or service_id in d.service_ids)
            and (not specialty or d.specialty.lower() == specialty.lower())
            and (include_retired or not d.retired)
        ]

    async def get(self, doctor_id: str, field: str = "doctor_id") -> doctor_pb2.Doctor:
        return (await self._schedule(doctor_id, field)).doctor

    async def set_weekly_plan(
        self, req: doctor_pb2.SetWeeklyPlanRequest, who: Principal
    ) -> doctor_pb2.WeeklyPlan:
        who.require_staff()
        bad = domain.validate_weekly_plan(req, self._today())
        if bad:
            raise InvalidArgument(bad)
        doctor = await self.get(req.doctor_id)
        bad = domain.check_plan_against_doctor(req, doctor)
        if bad:
            raise InvalidArgument(bad)
        plan = doctor_pb2.WeeklyPlan(
            doctor_id=doctor.id,
            effective_from=req.effective_from,
            days=sorted(req.days, key=lambda d: d.weekday),
        )
        if await self._doctors.set_plan(plan) < 0:
            raise NotFound(f"doctor {req.doctor_id} not found")
        log.info("doctor.plan_set", doctor_id=doctor.id, effective_from=req.effective_from)
        return plan

    async def set_availability(
        self, req: doctor_pb2.SetAvailabilityRequest, who: Principal
    ) -> tuple[doctor_pb2.DoctorDay, list[doctor_pb2.AffectedBooking]]:
        who.require_staff()
        bad = domain.validate_availability(req, self._today())
        if bad:
            raise InvalidArgument(bad)
        schedule = await self._schedule(req.doctor_id)
        doctor = schedule.doctor
        fields: dict[str, str | int] = {
            "present": "1" if (not req.HasField("present") or req.present) else "0"
        }
        if req.note:
            fields["note"] = req.note
        if req.HasField("daily_capacity"):
            fields["capacity"] = req.daily_capacity
        if req.HasField("day_start"):
            fields["start"] = domain.parse_hhmm(req.day_start)
        if req.HasField("day_end"):
            fields["end"] = domain.parse_hhmm(req.day_end)
        state = await self._places.day(req.date, doctor.id)
        plan = self._resolve(schedule, req.date, {k: str(v) for k, v in fields.items()}, state.leave)
        if plan.end <= plan.start:
            raise InvalidArgument([("day_end", f"must be after the day's start ({domain.hhmm(plan.start)})")])
        affected = await self._write_day(req.date, schedule, "day", fields, req.note, who)
        log.info("doctor.availability_set", doctor_id=doctor.id, date=req.date, present=fields["present"])
        return await self._view(doctor, req.date), affected

    async def set_leave(
        self, req: doctor_pb2.SetLeaveRequest, who: Principal
    ) -> tuple[list[doctor_pb2.DoctorDay], list[doctor_pb2.AffectedBooking]]:
        who.require_staff()
        first, last = getattr(req, "from"), req.to
        bad, days = domain.validate_leave(req.doctor_id, first, last, req.note, self._today())
        if bad:
            raise InvalidArgument(bad)
        schedule = await self._schedule(req.doctor_id)
        affected: list[doctor_pb2.AffectedBooking] = []
        views = []
        for day in days:
            iso = day.isoformat()
            affected += await self._write_day(iso, schedule, "leave", {"note": req.note}, req.note, who)
            views.append(await self._view(schedule.doctor, iso))
        log.info(
            "doctor.leave_set", doctor_id=schedule.doctor.id, first=first, last=last, affected=len(affected)
        )
        return views, affected

    async def day(self, doctor_id: str, day: str) -> doctor_pb2.DoctorDay:
        day = day or self._today().isoformat()
        bad = domain.check_day(day, self._today())
        if bad and "before today" not in bad[0][1]:  # past days can be looked at
            raise InvalidArgument(bad)
        return await self._view(await self.get(doctor_id), day)

    async def find_slots(self, req: doctor_pb2.FindSlotsRequest) -> list[doctor_pb2.Slot]:
        bad, days = domain.validate_find_slots(req, self._today())
        if req.service_id and req.service_id not in self._catalog.services and not bad:
            bad.append(("service_id", "unknown service id"))
        if bad:
            raise InvalidArgument(bad)
        limit = req.limit or domain.DEFAULT_FIND_LIMIT
        doctors = await self.list(req.service_id, req.specialty)
        plans = await self._doctors.schedules([d.id for d in doctors])
        found: list[doctor_pb2.Slot] = []
        for day in days:
            iso = day.isoformat()
            if req.service_id:
                capacity = self._catalog.services[req.service_id].daily_capacity
                if await self._places.service_booked(iso, req.service_id) >= capacity:
                    continue
            states = await self._places.days(iso, [d.id for d in doctors])
            on_day = []
            for doctor in doctors:
                state = states[doctor.id]
                plan = domain.resolve_day(doctor, day, state.override, state.leave, plans[doctor.id])
                for start in domain.free_times_of(
                    doctor,
                    plan,
                    state.tokens_held,
                    state.intervals,
                    req.duration_minutes,
                    self._not_before(iso),
                ):
                    on_day.append((start, doctor.code.lower(), doctor.id))
            found += [doctor_pb2.Slot(doctor_id=d, date=iso, start_time=t) for t, _, d in sorted(on_day)]
            if len(found) >= limit:
                break
        return found[:limit]

    async def resolve(self, doctor_id: str, day: str) -> tuple[Schedule, domain.DayPlan, Resolved]:
        """The doctor's day as it stands, and the same as the places scripts take it."""
        schedule = await self._schedule(doctor_id)
        state = await self._places.day(day, doctor_id)
        plan = self._resolve(schedule, day, state.override, state.leave)
        return schedule, plan, _resolved(plan, state.n, schedule.revision)

    async def settle(self, doctor_id: str, day: str) -> domain.DayPlan:
        """Resolve the doctor's day and keep it in the date's slot, so a script there that judges a
        booking against it (`fits`, e.g. a reschedule's) sees it, or a newer one, atomically."""
        for _ in range(UPDATE_ATTEMPTS):
            _, plan, resolved = await self.resolve(doctor_id, day)
            if await self._places.settle(day, doctor_id, resolved):
                return plan
        raise Conflict(f"doctor {doctor_id}'s day {day} kept changing; try again")

    # -- internals ------------------------------------------------------------------------------

    async def _schedule(self, doctor_id: str, field: str = "doctor_id") -> Schedule:
        if not validate.is_id(doctor_id, validate.TOKEN_ID):
            raise InvalidArgument([(field, "must be a doctor id")])
        schedule = await self._doctors.schedule(doctor_id)
        if schedule is None:
            raise NotFound(f"doctor {doctor_id} not found")
        return schedule

    def _resolve(self, schedule: Schedule, day: str, override, leave) -> domain.DayPlan:
        return domain.resolve_day(schedule.doctor, parse_date(day), override, leave, schedule.plans)

    async def _write_day(
        self,
        day: str,
        schedule: Schedule,
        kind: str,
        fields: dict[str, str | int],
        note: str,
        who: Principal,
    ) -> list[doctor_pb2.AffectedBooking]:
        """Write the date's availability or leave with the day it resolves to (compare-and-set, read
        again on a lost race); an absent day answers (and tells booking_svc of) its held bookings."""
        for _ in range(UPDATE_ATTEMPTS):
            state = await self._places.day(day, schedule.doctor.id)
            override = state.override if kind == "leave" else {k: str(v) for k, v in fields.items()}
            leave = {k: str(v) for k, v in fields.items()} if kind == "leave" else state.leave
            plan = self._resolve(schedule, day, override, leave)
            held = await self._places.set_input(
                day,
                schedule.doctor.id,
                kind,
                fields,
                _resolved(plan, state.n, schedule.revision),
                collect=not plan.present,
            )
            if held is not None:
                break
            schedule = await self._schedule(schedule.doctor.id)  # a newer plan or doctor: read it
        else:
            raise Conflict(f"doctor {schedule.doctor.id}'s day {day} kept changing; try again")
        affected = [
            doctor_pb2.AffectedBooking(
                booking_id=h.booking_id,
                date=day,
                start_time=domain.hhmm(h.start) if h.start >= 0 else "",
                token=h.token,
            )
            for h in sorted(held, key=lambda h: h.token)
        ]
        actor = common_pb2.Actor(sub=who.sub, role=who.role)
        for a in affected:
            await self._tell_unavailable(a, schedule.doctor.id, note, actor)
        return affected

    async def _tell_unavailable(
        self, a: doctor_pb2.AffectedBooking, doctor_id: str, note: str, actor: common_pb2.Actor
    ) -> None:
        """booking_svc records EVENT_TYPE_DOCTOR_UNAVAILABLE once per booking and date; the message
        id makes a repeated call (or a retried publish) one message."""
        if self._publish is None:
            return
        message = saga_pb2.DoctorUnavailable(
            booking_id=a.booking_id, doctor_id=doctor_id, date=a.date, note=note, actor=actor
        )
        await self._publish(
            subjects.saga_subject(subjects.DOCTOR_UNAVAILABLE, a.booking_id),
            message.SerializeToString(),
            f"{a.booking_id}:doctor.unavailable:{a.date}",
        )

    async def _view(self, doctor: doctor_pb2.Doctor, day: str) -> doctor_pb2.DoctorDay:
        schedule = await self._schedule(doctor.id)
        state = await self._places.day(day, doctor.id)
        plan = self._resolve(schedule, day, state.override, state.leave)
        waitlisted = await self._places.waitlisted(day, doctor.id)
        return domain.day_view(
            schedule.doctor,
            day,
            plan,
            state.tokens_held,
            state.intervals,
            waitlisted,
            not_before=self._not_before(day),
        )

    def _not_before(self, day: str) -> int:
        """On today's date, the current minute in the clinic (no past time is offered); else 0."""
        now = self._clock.now().astimezone(self._tz)
        return now.hour * 60 + now.minute + 1 if day == now.date().isoformat() else 0

    def _today(self):
        return clinic_day(self._clock.now(), self._tz)


def _resolved(plan: domain.DayPlan, n: int, revision: int) -> Resolved:
    return Resolved(
        plan.present, plan.capacity, plan.start, plan.end, domain.encode_breaks(plan.breaks), n, revision
    )


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
        resolve: Callable[[str, str], Awaitable[tuple[Schedule, domain.DayPlan, Resolved]]],
        offer_s: int = 900,
        tz: ZoneInfo | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._places = places
        self._doctors = doctors
        self._catalog = catalog
        self._publish = publish
        self._resolve = resolve  # Doctors.resolve: the one place a doctor's day is resolved
        self._offer_ms = offer_s * 1000
        self._tz = tz or ZoneInfo("Asia/Kolkata")
        self._clock = clock or Clock()

    async def on_requested(self, req: saga_pb2.PlacesRequested) -> None:
        _, outcome = await self._reserve(req, waitlist=req.waitlist)
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
        current, _ = await self._request(move.current)
        same_day = move.current.appointment_date == move.target.appointment_date
        _, outcome = await self._reserve(move.target, replaces=current.booking_id if same_day else "")
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

    async def _reserve(
        self, req: saga_pb2.PlacesRequested, *, waitlist: bool = False, replaces: str = ""
    ) -> tuple[Request, Outcome]:
        """Reserve `req`'s places against the doctor's day as it stands now: resolved here (plans,
        leave, availability, retirement), handed to the script, resolved again if the script finds
        the date or the doctor moved on since."""
        capacities = [self._catalog.services[s].daily_capacity for s in req.service_ids]
        for _ in range(UPDATE_ATTEMPTS):
            resolved, doctor = None, None
            if req.doctor_id:
                schedule, _, resolved = await self._resolve(req.doctor_id, req.appointment_date)
                doctor = schedule.doctor
            request, defaults = await self._request(req, doctor)
            outcome = await self._places.reserve(
                request, capacities, defaults, waitlist=waitlist, replaces=replaces, resolved=resolved
            )
            if outcome.state != "stale":
                return request, outcome
        raise Conflict(f"doctor {req.doctor_id}'s day kept changing while booking {req.booking_id} waited")

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

    async def _request(
        self, req: saga_pb2.PlacesRequested, doctor: doctor_pb2.Doctor | None = None
    ) -> tuple[Request, tuple[int, int, int]]:
        start = end = -1
        defaults = (0, 0, 0)
        if req.doctor_id:
            doctor = doctor or await self._doctors.get(req.doctor_id)
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
