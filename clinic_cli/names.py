"""Names beside ids in the tables the desk reads: "Dr Meera Rao (d-1a2b…)", "Asha Rao (p-…)".

Looked up once per id through the public API with the CLI's own token; an id whose lookup is
refused or fails stays shown as the bare id, so a table never fails for want of a name.
"""

from __future__ import annotations

import grpc

from clinic.v1 import booking_pb2, doctor_pb2

from .client import Api


def labelled(name: str, id_: str) -> str:
    return f"{name} ({id_})" if name else id_


class Names:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._doctors: dict[str, str] = {}
        self._by_booking: dict[str, str] = {}

    async def doctor(self, doctor_id: str) -> str:
        if not doctor_id:
            return ""
        if doctor_id not in self._doctors:
            req = doctor_pb2.GetDoctorRequest(doctor_id=doctor_id)
            try:
                name = (await self._api.doctors.GetDoctor(req, metadata=self._api.md, timeout=10)).doctor.name
            except grpc.aio.AioRpcError:
                name = ""
            self._doctors[doctor_id] = name
        return labelled(self._doctors[doctor_id], doctor_id)

    async def patient_of(self, booking_id: str, patient_id: str) -> str:
        """The patient of a booking, by the name the booking carries."""
        if booking_id not in self._by_booking:
            req = booking_pb2.GetBookingRequest(booking_id=booking_id)
            try:
                reply = await self._api.bookings.GetBooking(req, metadata=self._api.md, timeout=10)
                name = reply.booking.patient.name
            except grpc.aio.AioRpcError:
                name = ""
            self._by_booking[booking_id] = name
        return labelled(self._by_booking[booking_id], patient_id)
