"""The FHIR R4 REST interactions fhir_svc serves: thin HTTP handlers over ClinicApi and domain.

Who calls comes from the edge (x-clinic-sub / x-clinic-role from the verified JWT; this server takes
connections only from peers with an internal certificate) and goes along on every gRPC call.
Every answer is validated against the R4 models of fhir.resources before it leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pydantic
from aiohttp import web
from fhir.resources import construct_fhir_element

from clinic.v1 import booking_pb2, common_pb2
from clinic_common import logs, tracing
from clinic_common.errors import InvalidArgument
from clinic_common.principal import ROLE_KEY, ROLES, SUB_KEY, Principal

from . import domain
from .api import ApiError, ClinicApi

FHIR_JSON = "application/fhir+json"
BASE = "/fhir/R4"
TYPES = ("Patient", "Practitioner", "Schedule", "Slot", "Appointment")
SEARCH_PARAMS = {
    "Patient": ("identifier", "telecom", "name"),
    "Practitioner": ("identifier", "name"),
    "Schedule": ("actor",),
    "Slot": ("schedule", "start", "status"),
    "Appointment": ("date", "practitioner", "patient", "status"),
}
PAGING = ("_count", "_offset", "_page_token")

log = logs.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fhir:
    def __init__(self, api: ClinicApi, tz: ZoneInfo) -> None:
        self._api = api
        self._tz = tz

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get(f"{BASE}/metadata", self.metadata),
            web.post(f"{BASE}/Appointment", self.create_appointment),
            web.get(f"{BASE}/{{kind}}", self.search),
            web.get(f"{BASE}/{{kind}}/{{id}}", self.read),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # ---- conformance -------------------------------------------------------------------

    async def metadata(self, request: web.Request) -> web.Response:
        return respond(capability_statement(base_url(request)))

    # ---- read --------------------------------------------------------------------------

    async def read(self, request: web.Request) -> web.Response:
        kind, rid = request.match_info["kind"], request.match_info["id"]
        who = caller(request)
        if kind == "Patient":
            resource = domain.patient(await self._api.patient(rid, who))
        elif kind == "Practitioner":
            resource = domain.practitioner(await self._api.doctor(rid, who))
        elif kind == "Schedule":
            resource = domain.schedule(await self._api.doctor(rid, who))
        elif kind == "Slot":
            doctor_id, day, _start = domain.parse_slot_id(rid)
            found = [s for s in await self._slots(doctor_id, [day], who) if s["id"] == rid]
            if not found:
                raise ApiError(404, f"Slot/{rid} is not a slot of that doctor's day")
            resource = found[0]
        elif kind == "Appointment":
            booking = await self._api.booking(rid, who)
            resource = (await self._appointments([booking], who))[0]
        else:
            raise ApiError(404, f"{kind} is not served here (see {BASE}/metadata)")
        return respond(resource)

    # ---- search ------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in TYPES:
            raise ApiError(404, f"{kind} is not served here (see {BASE}/metadata)")
        unknown = sorted(set(request.query) - set(SEARCH_PARAMS[kind]) - set(PAGING))
        if unknown:
            raise InvalidArgument([(p, f"not a search parameter of {kind} here") for p in unknown])
        who = caller(request)
        size = domain.count(request.query.get("_count"))
        if kind == "Appointment":
            return await self._search_appointments(request, who, size)
        offset = _offset(request)
        items = await getattr(self, f"_search_{kind.lower()}")(request, who)
        chunk, next_offset = domain.page(items, offset, size)
        return respond(_bundle(request, chunk, {"_offset": next_offset} if next_offset else None, len(items)))

    async def _search_patient(self, request: web.Request, who: Principal) -> list[dict]:
        q = request.query
        phone = _token(q.get("identifier") or q.get("telecom") or "")
        if who.is_staff:
            if not phone:
                raise InvalidArgument([("phone", "search the registry by identifier or telecom (the phone)")])
            found = await self._api.find_patients(phone, who)
        else:  # a patient sees their own record only
            own = await self._api.patient(who.sub, who)
            found = [own] if not phone or phone.lstrip("+")[-10:] in own.phone else []
        name = q.get("name")
        return [domain.patient(p) for p in found if not name or domain.name_matches(p.name, name)]

    async def _search_practitioner(self, request: web.Request, who: Principal) -> list[dict]:
        code, name = _token(request.query.get("identifier", "")), request.query.get("name")
        return [
            domain.practitioner(d)
            for d in await self._api.doctors(who)
            if (not code or d.code == code) and (not name or domain.name_matches(d.name, name))
        ]

    async def _search_schedule(self, request: web.Request, who: Principal) -> list[dict]:
        actor = request.query.get("actor")
        if actor:
            doctor_id = domain.reference_id(
                f"Practitioner/{actor}" if "/" not in actor else actor, "Practitioner"
            )
            if not doctor_id:
                raise InvalidArgument([("doctor_id", "actor is Practitioner/<doctor_id>")])
            return [domain.schedule(await self._api.doctor(doctor_id, who))]
        return [domain.schedule(d) for d in await self._api.doctors(who)]

    async def _search_slot(self, request: web.Request, who: Principal) -> list[dict]:
        ref = request.query.get("schedule", "")
        doctor_id = domain.reference_id(f"Schedule/{ref}" if "/" not in ref else ref, "Schedule")
        if not doctor_id:
            raise InvalidArgument([("doctor_id", "schedule=Schedule/<doctor_id> is required")])
        status = request.query.get("status")
        if status not in (None, "free", "busy", "busy-unavailable"):
            raise InvalidArgument([("status", "free, busy or busy-unavailable")])
        first, last = domain.date_range(request.query.getall("start", []), self._today())
        found = await self._slots(doctor_id, domain.days(first, last), who)
        return [s for s in found if not status or s["status"] == status]

    async def _slots(self, doctor_id: str, days: list[str], who: Principal) -> list[dict]:
        doctor = await self._api.doctor(doctor_id, who)
        found = await asyncio.gather(*(self._api.doctor_day(doctor_id, day, who) for day in days))
        return [s for day in found for s in domain.slots(day, doctor.slot_minutes, self._tz)]

    async def _search_appointments(self, request: web.Request, who: Principal, size: int) -> web.Response:
        q = request.query
        status = q.get("status")
        if status is not None and status not in domain.STATUS_FILTER:
            raise InvalidArgument([("status", f"one of {', '.join(domain.STATUS_FILTER)}")])
        patient = q.get("patient", "")
        patient_id = domain.reference_id(f"Patient/{patient}" if "/" not in patient else patient, "Patient")
        if patient and not patient_id:
            raise InvalidArgument([("patient_id", "patient is Patient/<patient_id>")])
        doctor = q.get("practitioner", "")
        doctor_id = domain.reference_id(
            f"Practitioner/{doctor}" if "/" not in doctor else doctor, "Practitioner"
        )
        if doctor and not doctor_id:
            raise InvalidArgument([("doctor_id", "practitioner is Practitioner/<doctor_id>")])
        day = ""
        if "date" in q:
            first, last = domain.date_range(q.getall("date"), self._today(), "date")
            if first != last:
                raise InvalidArgument([("date", "one day: date=YYYY-MM-DD")])
            day = first.isoformat()
        if not who.is_staff and not patient_id:
            patient_id = who.sub  # a patient's own appointments
        listing = await self._api.bookings(
            booking_pb2.ListBookingsRequest(
                patient_id=patient_id,
                date=day,
                doctor_id=doctor_id,
                status=domain.STATUS_FILTER.get(status or "") or 0,
                page_size=size,
                page_token=q.get("_page_token", ""),
            ),
            who,
        )
        found = await self._appointments(list(listing.bookings), who)
        found = [a for a in found if not status or a["status"] == status]
        following = {"_page_token": listing.next_page_token} if listing.next_page_token else None
        return respond(_bundle(request, found, following))

    async def _appointments(self, bookings: list[common_pb2.Booking], who: Principal) -> list[dict]:
        """Appointments of these bookings; for staff, with the front desk's check-in state."""
        visits: dict[str, int] = {}
        if who.is_staff:
            days = {
                (b.doctor_id, b.appointment_date)
                for b in bookings
                if b.status == common_pb2.BOOKING_STATUS_CONFIRMED
            }
            for doctor_id, day in sorted(days):
                if day > self._today().isoformat():
                    continue  # nobody checks in ahead of the day
                try:
                    visits.update({v.booking_id: v.state for v in await self._api.queue(doctor_id, day, who)})
                except ApiError as err:  # the desk being down leaves the appointment booked
                    log.warning("fhir.queue_unavailable", status=err.status, detail=err.message)
        return [domain.appointment(b, self._tz, visits.get(b.id, 0)) for b in bookings]

    # ---- create ------------------------------------------------------------------------

    async def create_appointment(self, request: web.Request) -> web.Response:
        who = caller(request)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument([("body", "a JSON Appointment resource")]) from None
        if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
            raise InvalidArgument([("body", "resourceType is Appointment")])
        new = domain.new_appointment(body, self._tz)
        body = {k: v for k, v in body.items() if k != "id"}  # the server names it
        validate(body)
        try:
            person = await self._api.patient(new.patient_id, who)
        except ApiError as err:
            if err.status != 404:
                raise
            raise InvalidArgument([("patient.id", f"Patient/{new.patient_id} is not registered")]) from None
        booking = await self._api.create(domain.create_request(new, person), who)
        log.info("fhir.appointment_created", booking_id=booking.id)
        resource = (await self._appointments([booking], who))[0]
        location = f"{base_url(request)}/Appointment/{booking.id}"
        return respond(resource, status=201, headers={"Location": location})

    def _today(self):
        return datetime.now(self._tz).date()


# ---- plumbing ----------------------------------------------------------------------------------


def caller(request: web.Request) -> Principal:
    """The verified caller the edge forwarded; none means the call did not come through the edge."""
    sub, role = request.headers.get(SUB_KEY, ""), request.headers.get(ROLE_KEY, "")
    if not sub or role not in ROLES:
        raise ApiError(401, "no verified caller: send a bearer token through the public address")
    return Principal(sub=sub, role=role)


def base_url(request: web.Request) -> str:
    proto = request.headers.get("x-forwarded-proto", request.scheme)
    return f"{proto}://{request.host}{BASE}"


def _token(value: str) -> str:
    """The value of a token search parameter (`system|value` or `value`); a query's '+' may arrive as ' '."""
    value = value.rpartition("|")[2].strip() if "|" in value else value
    return "+" + value.strip() if value.startswith(" ") else value.strip()


def _offset(request: web.Request) -> int:
    raw = request.query.get("_offset", "0")
    if not raw.isdigit():
        raise InvalidArgument([("page_token", "_offset is a number")])
    return int(raw)


def _bundle(
    request: web.Request, entries: list[dict], following: dict | None, total: int | None = None
) -> dict:
    base = base_url(request)
    here = f"{base}/{request.match_info['kind']}"
    params = [(k, v) for k, v in request.query.items() if k not in ("_offset", "_page_token")]
    self_link = f"{here}?{urlencode(list(request.query.items()))}" if request.query else here
    next_link = f"{here}?{urlencode(params + list(following.items()))}" if following else ""
    return domain.bundle(entries, base, self_link, next_link, total)


def validate(resource: dict) -> None:
    """The resource against the FHIR R4 models; a client's resource that fails is a 400."""
    try:
        construct_fhir_element(resource["resourceType"], resource)
    except pydantic.ValidationError as err:
        raise InvalidArgument(
            [
                (".".join(str(p) for p in e["loc"] if p != "__root__") or "body", e["msg"])
                for e in err.errors()
            ]
        ) from None


def respond(resource: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    validate_own(resource)
    return web.Response(
        status=status, text=json.dumps(resource), content_type=FHIR_JSON, charset="utf-8", headers=headers
    )


def validate_own(resource: dict) -> None:
    """What this service answers must be valid R4: a failure is a bug here, logged and a 500."""
    try:
        construct_fhir_element(resource["resourceType"], resource)
    except pydantic.ValidationError as err:
        where = [".".join(str(p) for p in e["loc"]) for e in err.errors()]  # places, never values (PHI)
        log.error("fhir.invalid_resource", kind=resource.get("resourceType"), fields=where[:20])
        raise ApiError(500, "the server built an invalid resource") from None


def capability_statement(base: str) -> dict:
    """Exactly what this facade serves: five resource types, their reads, searches and one create."""

    def resource(kind: str) -> dict:
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if kind == "Appointment":
            interactions.append({"code": "create"})
        kinds = {"start": "date", "date": "date", "status": "token", "name": "string"}
        return {
            "type": kind,
            "interaction": interactions,
            "searchParam": [
                {
                    "name": p,
                    "type": kinds.get(
                        p, "reference" if p in ("schedule", "actor", "practitioner", "patient") else "token"
                    ),
                }
                for p in SEARCH_PARAMS[kind]
            ]
            + [{"name": "_count", "type": "number"}],
        }

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-03",
        "kind": "instance",
        "fhirVersion": domain.FHIR_VERSION,
        "format": ["json"],
        "implementation": {"description": "Clinic booking: FHIR R4 facade", "url": base},
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Bearer JWT (the same token as the gRPC API); metadata needs none",
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                },
                "resource": [resource(k) for k in TYPES],
            }
        ],
    }


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as an OperationOutcome; BadRequest field names as the issues' expressions."""
    kind = request.match_info.get("kind", request.path.rpartition("/")[2])
    parent = request.headers.get(tracing.HEADER, "")
    try:
        with tracing.span(
            f"FHIR {request.method} {kind}", "server", parent, **{"http.request.method": request.method}
        ):
            return await handler(request)
    except InvalidArgument as exc:
        return _outcome(400, str(exc), exc.violations)
    except ApiError as exc:
        return _outcome(exc.status, exc.message, exc.violations)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _outcome(exc.status, exc.reason)


def _outcome(status: int, message: str, violations=()) -> web.Response:
    body = domain.operation_outcome(status, message, violations)
    return web.Response(status=status, text=json.dumps(body), content_type=FHIR_JSON, charset="utf-8")
