"""The public gRPC API as fhir_svc calls it: always as the caller, so the services apply their own rules.

A patient reading another patient is PERMISSION_DENIED in schedule_svc or booking_svc, never here.
Every gRPC error comes back as an ApiError with its HTTP status and, for INVALID_ARGUMENT, the
BadRequest field violations unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from clinic.v1 import (
    booking_pb2,
    booking_pb2_grpc,
    doctor_pb2,
    doctor_pb2_grpc,
    frontdesk_pb2,
    frontdesk_pb2_grpc,
    patient_pb2,
    patient_pb2_grpc,
)
from clinic_common import tracing
from clinic_common.errors import bad_request_violations
from clinic_common.principal import Principal

CALL_TIMEOUT_S = 5.0
T = TypeVar("T")

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@dataclass
class ApiError(Exception):
    status: int
    message: str
    violations: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


class ClinicApi:
    """Stubs over the channels to booking_svc, schedule_svc and frontdesk_svc."""

    def __init__(self, booking: grpc.aio.Channel, schedule: grpc.aio.Channel, frontdesk: grpc.aio.Channel):
        self._bookings = booking_pb2_grpc.BookingServiceStub(booking)
        self._patients = patient_pb2_grpc.PatientServiceStub(schedule)
        self._doctors = doctor_pb2_grpc.DoctorServiceStub(schedule)
        self._desk = frontdesk_pb2_grpc.FrontDeskServiceStub(frontdesk)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any, who: Principal) -> T:
        try:
            trace = tracing.current()  # this request's span is the parent of the services' spans
            metadata = (*who.metadata(), (tracing.HEADER, trace)) if trace else who.metadata()
            return await method(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            code = err.code()
            violations = bad_request_violations(err) if code == grpc.StatusCode.INVALID_ARGUMENT else []
            raise ApiError(HTTP_STATUS.get(code, 500), err.details() or code.name, violations) from None

    async def patient(self, patient_id: str, who: Principal):
        req = patient_pb2.GetPatientRequest(patient_id=patient_id)
        return (await self._call(self._patients.GetPatient, req, who)).patient

    async def find_patients(self, phone: str, who: Principal):
        req = patient_pb2.FindPatientsRequest(phone=phone)
        return list((await self._call(self._patients.FindPatients, req, who)).patients)

    async def doctors(self, who: Principal):
        return list(
            (await self._call(self._doctors.ListDoctors, doctor_pb2.ListDoctorsRequest(), who)).doctors
        )

    async def doctor(self, doctor_id: str, who: Principal):
        req = doctor_pb2.GetDoctorRequest(doctor_id=doctor_id)
        return (await self._call(self._doctors.GetDoctor, req, who)).doctor

    async def doctor_day(self, doctor_id: str, day: str, who: Principal):
        req = doctor_pb2.GetDoctorDayRequest(doctor_id=doctor_id, date=day)
        return (await self._call(self._doctors.GetDoctorDay, req, who)).day

    async def booking(self, booking_id: str, who: Principal):
        req = booking_pb2.GetBookingRequest(booking_id=booking_id)
        return (await self._call(self._bookings.GetBooking, req, who)).booking

    async def bookings(self, request: booking_pb2.ListBookingsRequest, who: Principal):
        return await self._call(self._bookings.ListBookings, request, who)

    async def create(self, request: booking_pb2.CreateBookingRequest, who: Principal):
        return (await self._call(self._bookings.CreateBooking, request, who)).booking

    async def queue(self, doctor_id: str, day: str, who: Principal):
        req = frontdesk_pb2.GetQueueRequest(doctor_id=doctor_id, date=day)
        return list((await self._call(self._desk.GetQueue, req, who)).visits)
