"""The words a caller reads for two common mistakes (issue 15, finding 8)."""

from __future__ import annotations

import grpc
import pytest

from clinic.v1 import booking_pb2
from clinic_common.errors import bad_request_violations
from tests.harness import Client, future_date, patient, uid


async def test_an_impossible_date_of_birth_is_called_not_a_real_date(client):
    req = booking_pb2.CreateBookingRequest(
        patient=patient(dob="1990-02-30"), service_ids=["gen-consult"], appointment_date=future_date()
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.CreateBooking(req, metadata=Client.auth(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("patient.date_of_birth", "1990-02-30 is not a real date") in bad_request_violations(caught.value)


async def test_listing_another_patients_bookings_does_not_talk_of_one_booking(client):
    me, other = uid("me"), uid("other")
    req = booking_pb2.ListBookingsRequest(patient_id=other, page_size=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.bookings.ListBookings(req, metadata=Client.auth(me, "patient"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "this booking" not in caught.value.details()
    assert "only their own bookings" in caught.value.details()
