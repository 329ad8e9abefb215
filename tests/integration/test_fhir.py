"""The FHIR R4 facade through the real edge, driven by a real FHIR client library (fhirpy).

Everything fhir_svc answers is validated again here with fhir.resources (R4 4.0.1 models).
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.error
import urllib.request
from datetime import date, timedelta

import pytest
from fhir.resources import construct_fhir_element
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, ResourceNotFound

from clinic.v1 import booking_pb2, common_pb2, patient_pb2
from gateway.auth import mint
from tests.harness import SECRET, future_date, uid, wait_for

STAFF = "desk-1"


def fhir(system, sub: str = STAFF, role: str = "staff") -> AsyncFHIRClient:
    return AsyncFHIRClient(
        f"http://{system.gateway_addr}/fhir/R4",
        authorization=f"Bearer {mint(SECRET, sub, role)}",
        extra_headers={"accept": "application/fhir+json"},
    )


def raw(system, path: str, body: dict | None = None, token: str | None = None, method: str = "GET"):
    """(status, headers, JSON) of one plain HTTP request: for what a client library hides."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{system.gateway_addr}/fhir/R4{path}", data=data, method=method)
    req.add_header("content-type", "application/fhir+json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


async def http(system, path, body=None, token=None, method="GET"):
    return await asyncio.to_thread(raw, system, path, body, token, method)


def valid(resource) -> dict:
    """The resource as a dict, after fhir.resources has parsed it as FHIR R4."""
    data = resource.serialize() if hasattr(resource, "serialize") else dict(resource)
    construct_fhir_element(data["resourceType"], data)
    return data


async def registered(client, name: str = "Asha Fhir") -> common_pb2.Patient:
    phone = "+9198" + "".join(random.choice("0123456789") for _ in range(8))
    req = patient_pb2.RegisterPatientRequest(
        name=name, phone=phone, gender=common_pb2.GENDER_FEMALE, date_of_birth="1990-05-06"
    )
    return (await client.patients.RegisterPatient(req, metadata=client.auth(), timeout=10)).patient


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


async def test_capability_statement_is_public_and_lists_what_is_served(system):
    status, headers, body = await http(system, "/metadata")
    assert status == 200 and headers["Content-Type"].startswith("application/fhir+json")
    valid(body)
    assert body["fhirVersion"] == "4.0.1"
    kinds = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(kinds) == {"Patient", "Practitioner", "Schedule", "Slot", "Appointment"}
    assert {i["code"] for i in kinds["Appointment"]["interaction"]} == {"read", "search-type", "create"}
    assert {p["name"] for p in kinds["Slot"]["searchParam"]} >= {"schedule", "start", "status"}


async def test_list_free_slots_book_one_and_read_it_back_booked(system, client):
    doctor = await client.doctor(("gen-consult",), slot_minutes=30, day_start="09:00", day_end="12:00")
    person = await registered(client)
    day = future_date()
    api = fhir(system)

    schedule = valid(await api.reference("Schedule", doctor.id).to_resource())
    assert schedule["actor"][0]["reference"] == f"Practitioner/{doctor.id}"
    slots = await (
        api.resources("Slot")
        .search(schedule=f"Schedule/{doctor.id}", status="free")
        .search(start__ge=day, start__lt=next_day(day))
        .fetch_all()
    )
    assert len(slots) == 6  # 09:00-12:00 in 30-minute slots, all free
    for s in slots:
        valid(s)
    chosen = slots[2]
    assert chosen["start"].startswith(f"{day}T10:00")

    appointment = api.resource(
        "Appointment",
        status="proposed",
        serviceType=[{"coding": [{"system": "urn:clinic:service", "code": "gen-consult"}]}],
        start=chosen["start"],
        end=chosen["end"],
        participant=[
            {"actor": {"reference": f"Patient/{person.id}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{doctor.id}"}, "status": "accepted"},
        ],
    )
    await appointment.save()
    assert appointment.id
    assert appointment["status"] in ("pending", "booked")

    async def booked():
        got = await api.reference("Appointment", appointment.id).to_resource()
        return got if got["status"] == "booked" else None

    got = valid(await wait_for(booked, 20, "the FHIR appointment to be booked"))
    assert got["slot"] == [{"reference": f"Slot/{chosen['id']}"}]
    assert {p["actor"]["reference"] for p in got["participant"]} == {
        f"Patient/{person.id}",
        f"Practitioner/{doctor.id}",
    }
    # the slot is busy now, and the booking is the same one the gRPC API sees
    taken = valid(await api.reference("Slot", chosen["id"]).to_resource())
    assert taken["status"] == "busy"
    assert (await client.get(appointment.id)).status == common_pb2.BOOKING_STATUS_CONFIRMED
    found = await api.resources("Appointment").search(patient=f"Patient/{person.id}", status="booked").fetch()
    assert [a.id for a in found] == [appointment.id]


async def test_post_appointment_answers_201_with_location(system, client):
    person = await registered(client)
    body = {
        "resourceType": "Appointment",
        "status": "proposed",
        "serviceType": [{"coding": [{"system": "urn:clinic:service", "code": "blood-panel"}]}],
        "participant": [{"actor": {"reference": f"Patient/{person.id}"}, "status": "accepted"}],
        "identifier": [{"system": "urn:clinic:request-id", "value": uid("fhir-req")}],
        "reasonCode": [{"text": "follow-up, knee"}],  # the booking's note
    }
    status, headers, created = await http(system, "/Appointment", body, mint(SECRET, STAFF, "staff"), "POST")
    assert status == 201, created
    valid(created)
    assert headers["Location"].endswith(f"/fhir/R4/Appointment/{created['id']}")
    assert created["reasonCode"] == [{"text": "follow-up, knee"}]
    assert (await client.get(created["id"])).note == "follow-up, knee"
    # the same identifier (CreateBooking's request_id) again: the same booking, not a second one
    again = await http(system, "/Appointment", body, mint(SECRET, STAFF, "staff"), "POST")
    assert again[2]["id"] == created["id"]


async def test_bad_appointment_is_a_400_outcome_naming_the_fields_and_books_nothing(system, client):
    person = await registered(client)
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [{"coding": [{"system": "urn:clinic:service", "code": "no-such-service"}]}],
        "start": "tomorrow at ten",
        "participant": [{"actor": {"reference": f"Patient/{person.id}"}, "status": "accepted"}],
    }
    status, _, outcome = await http(system, "/Appointment", body, mint(SECRET, STAFF, "staff"), "POST")
    assert status == 400
    valid(outcome)
    fields = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert {"status", "start_time", "doctor_id"} <= fields, outcome
    # well-formed FHIR, but the booking rules say no: the services' own BadRequest field names
    body.update(status="proposed")
    del body["start"]
    status, _, outcome = await http(system, "/Appointment", body, mint(SECRET, STAFF, "staff"), "POST")
    assert status == 400, outcome
    assert {e for i in outcome["issue"] for e in i.get("expression", [])} == {"service_ids[0]"}
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=person.id), metadata=client.auth(), timeout=10
    )
    assert not listed.bookings


async def test_unauthenticated_is_401_and_a_patient_reading_another_is_403(system, client):
    me, other = await registered(client, "Me Patient"), await registered(client, "Other Patient")
    status, _, outcome = await http(system, f"/Patient/{me.id}")
    assert status == 401 and outcome["resourceType"] == "OperationOutcome"
    mine = fhir(system, me.id, "patient")
    assert valid(await mine.reference("Patient", me.id).to_resource())["id"] == me.id
    with pytest.raises(ForbiddenError, match="forbidden"):
        await mine.reference("Patient", other.id).to_resource()
    with pytest.raises(ForbiddenError):
        await mine.resources("Appointment").search(patient=f"Patient/{other.id}").fetch()
    anonymous = AsyncFHIRClient(f"http://{system.gateway_addr}/fhir/R4")
    with pytest.raises(AuthorizationError, match="OperationOutcome"):
        await anonymous.resources("Appointment").fetch()
    status, _, outcome = await http(system, f"/Patient/{other.id}", token=mint(SECRET, me.id, "patient"))
    assert status == 403 and outcome["issue"][0]["code"] == "forbidden"
    # a patient's searches see only their own records
    found = await mine.resources("Patient").fetch()
    assert [p.id for p in found] == [me.id]


async def test_searches_are_bundles_with_paging_links(system, client):
    doctor = await client.doctor(("gen-consult",), slot_minutes=60, day_start="09:00", day_end="17:00")
    day = future_date()
    status, _, bundle = await http(
        system,
        f"/Slot?schedule=Schedule/{doctor.id}&start=ge{day}&start=lt{next_day(day)}&_count=3",
        token=mint(SECRET, STAFF, "staff"),
    )
    assert status == 200
    valid(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 8 and len(bundle["entry"]) == 3
    (following,) = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    pages = [bundle]
    while following:
        path = following.partition("/fhir/R4")[2]
        _, _, page = await http(system, path, token=mint(SECRET, STAFF, "staff"))
        pages.append(page)
        following = next((link["url"] for link in page["link"] if link["relation"] == "next"), "")
    ids = [e["resource"]["id"] for p in pages for e in p.get("entry", [])]
    assert len(ids) == 8 == len(set(ids))
    practitioners = await fhir(system).resources("Practitioner").search(identifier=doctor.code).fetch()
    assert [valid(p)["id"] for p in practitioners] == [doctor.id]
    token = mint(SECRET, STAFF, "staff")
    status, _, outcome = await http(system, "/Slot?schedule=Schedule/x&when=now", token=token)
    assert status == 400 and outcome["issue"][0]["expression"] == ["when"]


async def test_unknown_resource_is_a_404_outcome(system):
    with pytest.raises(ResourceNotFound):
        await fhir(system).reference("Appointment", "b-no-such-booking").to_resource()


async def test_a_forged_identity_header_changes_nothing(system, client):
    """Only the edge says who calls: a patient's own copy of the identity headers is dropped."""
    me, other = await registered(client, "Me Patient"), await registered(client, "Other Patient")
    req = urllib.request.Request(f"http://{system.gateway_addr}/fhir/R4/Patient/{other.id}")
    req.add_header("authorization", f"Bearer {mint(SECRET, me.id, 'patient')}")
    req.add_header("x-clinic-sub", other.id)
    req.add_header("x-clinic-role", "admin")

    def status() -> int:
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    assert await asyncio.to_thread(status) == 403


async def test_many_fhir_clients_booking_one_slot_get_it_once(system, client):
    """The slot is the services' to hand out: ten POSTs for it at once, one booked, the rest cancelled."""
    doctor = await client.doctor(("gen-consult",), slot_minutes=30, day_start="09:00", day_end="10:00")
    people = [await registered(client, f"Racer {n}") for n in range(10)]
    day = future_date()
    api = fhir(system)
    (first, _) = await (
        api.resources("Slot")
        .search(schedule=f"Schedule/{doctor.id}")
        .search(start__ge=day, start__lt=next_day(day))
        .fetch_all()
    )

    async def book(person) -> str:
        appointment = api.resource(
            "Appointment",
            status="proposed",
            serviceType=[{"coding": [{"system": "urn:clinic:service", "code": "gen-consult"}]}],
            start=first["start"],
            end=first["end"],
            participant=[
                {"actor": {"reference": f"Patient/{person.id}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{doctor.id}"}, "status": "accepted"},
            ],
        )
        await appointment.save()
        return appointment.id

    ids = await asyncio.gather(*(book(p) for p in people))

    async def all_decided():
        got = [await api.reference("Appointment", i).to_resource() for i in ids]
        return got if all(a["status"] in ("booked", "cancelled") for a in got) else None

    final = await wait_for(all_decided, 30, "every racing appointment to be decided")
    assert sorted(a["status"] for a in final).count("booked") == 1
    losers = [valid(a) for a in final if a["status"] == "cancelled"]
    assert len(losers) == 9
    assert {a["cancelationReason"]["coding"][0]["code"] for a in losers} == {
        "REJECTION_REASON_SLOT_UNAVAILABLE"
    }
    taken = valid(await api.reference("Slot", first["id"]).to_resource())
    assert taken["status"] == "busy"
