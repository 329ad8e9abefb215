"""Every bad input of the contract: INVALID_ARGUMENT naming the field; nothing stored or published."""

from __future__ import annotations

from datetime import timedelta

import grpc
import nats
import pytest

from clinic.v1 import booking_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.errors import bad_request_fields
from tests.harness import future_date, today_ist, uid

TOMORROW = (today_ist() + timedelta(days=1)).isoformat()
YESTERDAY = (today_ist() - timedelta(days=1)).isoformat()


def good(pid: str) -> booking_pb2.CreateBookingRequest:
    return booking_pb2.CreateBookingRequest(
        patient=c.Patient(id=pid, name="Ravi", gender=c.GENDER_MALE, date_of_birth="1980-01-31"),
        service_ids=["gen-consult"],
        appointment_date=future_date(),
    )


def _missing_patient(r):
    r.ClearField("patient")


CASES = {
    "missing patient": (_missing_patient, "patient"),
    "empty patient id": (lambda r: setattr(r.patient, "id", ""), "patient.id"),
    "unspecified gender": (lambda r: setattr(r.patient, "gender", c.GENDER_UNSPECIFIED), "patient.gender"),
    "malformed date of birth": (
        lambda r: setattr(r.patient, "date_of_birth", "31/01/1980"),
        "patient.date_of_birth",
    ),
    "future date of birth": (
        lambda r: setattr(r.patient, "date_of_birth", TOMORROW),
        "patient.date_of_birth",
    ),
    "no services": (lambda r: r.ClearField("service_ids"), "service_ids"),
    "unknown service": (lambda r: r.service_ids.append("teleportation"), "service_ids[1]"),
    "service not for gender": (lambda r: r.service_ids.append("mammography"), "service_ids[1]"),
    "malformed appointment date": (lambda r: setattr(r, "appointment_date", "tomorrow"), "appointment_date"),
    "appointment in the past": (lambda r: setattr(r, "appointment_date", YESTERDAY), "appointment_date"),
    "over-long name": (lambda r: setattr(r.patient, "name", "x" * 201), "patient.name"),
    "over-long patient id": (lambda r: setattr(r.patient, "id", "p" * 65), "patient.id"),
    "over-long request id": (lambda r: setattr(r, "request_id", "r" * 129), "request_id"),
    "too many services": (lambda r: r.service_ids.extend(["gen-consult"] * 25), "service_ids"),
}


@pytest.fixture
async def published(servers):
    """Every booking event and saga message published while the test runs."""
    nc = await nats.connect(servers.nats_url)
    seen: list[bytes] = []

    async def collect(msg):
        seen.append(msg.data)

    await nc.subscribe("booking.events.>", cb=collect)
    await nc.subscribe("saga.discount.requested.>", cb=collect)
    yield seen
    await nc.flush()
    await nc.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(client, published, case):
    mutate, field = CASES[case]
    pid = uid("bad")
    req = good(pid)
    mutate(req)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.CreateBooking(req, metadata=client.auth())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in bad_request_fields(caught.value)

    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=pid), metadata=client.auth()
    )
    assert list(listed.bookings) == []
    # A good request afterwards is published (the subscription works), the bad one never was.
    ok = await client.bookings.CreateBooking(good(uid("ok")), metadata=client.auth())
    from tests.harness import wait_for

    async def published_ok():
        return any(ok.booking.id.encode() in data for data in published)

    await wait_for(published_ok, what="the good booking's events")
    assert not any(pid.encode() in data for data in published)


async def test_several_bad_fields_are_all_named(client):
    req = good(uid("bad"))
    req.patient.gender = c.GENDER_UNSPECIFIED
    req.appointment_date = "2020-13-45"
    req.service_ids.append("nope")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.CreateBooking(req, metadata=client.auth())
    fields = set(bad_request_fields(caught.value))
    assert {"patient.gender", "appointment_date", "service_ids[1]"} <= fields


async def test_unknown_booking_is_not_found(client):
    for call in (client.get, client.cancel):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(uid("missing"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_services_filters_by_gender(client):
    from clinic.v1 import booking_pb2 as b

    male = await client.bookings.ListServices(
        b.ListServicesRequest(gender=c.GENDER_MALE), metadata=client.auth()
    )
    ids = {s.id for s in male.services}
    assert "psa-test" in ids and "mammography" not in ids
    everyone = await client.bookings.ListServices(b.ListServicesRequest(), metadata=client.auth())
    assert {"psa-test", "mammography"} <= {s.id for s in everyone.services}
    mammo = next(s for s in everyone.services if s.id == "mammography")
    assert (mammo.price.currency, mammo.price.amount_minor) == ("INR", 180000)
