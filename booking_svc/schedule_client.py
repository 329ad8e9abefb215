"""booking_svc asks schedule_svc, over gRPC, about the registered patient and the doctor a request names.

The caller's identity goes along, so the registry applies its own rules (a patient reads only
their own record). A doctor read is kept for DOCTOR_TTL_S: UpdateDoctor (services performed, slot
length) reaches new bookings within that; retirement and hours are judged by the places step,
which always reads the doctor afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import grpc

from clinic.v1 import common_pb2, doctor_pb2, doctor_pb2_grpc, patient_pb2, patient_pb2_grpc
from clinic_common import principal as principals
from clinic_common.errors import PermissionDenied, Unavailable

CALL_TIMEOUT_S = 3.0
KEEP_DOCTORS = 1000
DOCTOR_TTL_S = 2.0


class ScheduleClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._patients = patient_pb2_grpc.PatientServiceStub(channel)
        self._doctors = doctor_pb2_grpc.DoctorServiceStub(channel)
        self._known: OrderedDict[str, tuple[float, doctor_pb2.Doctor]] = OrderedDict()

    async def patient(self, patient_id: str, who: principals.Principal) -> common_pb2.Patient | None:
        """The registered patient, or None when no patient has that id."""
        try:
            response = await self._patients.GetPatient(
                patient_pb2.GetPatientRequest(patient_id=patient_id),
                metadata=_identity(who),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            return _absent_or_raise(err)
        return response.patient

    async def doctor(self, doctor_id: str, who: principals.Principal) -> doctor_pb2.Doctor | None:
        """The doctor, or None when no doctor has that id."""
        kept = self._known.get(doctor_id)
        if kept is not None and time.monotonic() - kept[0] < DOCTOR_TTL_S:
            return kept[1]
        try:
            response = await self._doctors.GetDoctor(
                doctor_pb2.GetDoctorRequest(doctor_id=doctor_id),
                metadata=_identity(who),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            return _absent_or_raise(err)
        self._known[doctor_id] = (time.monotonic(), response.doctor)
        self._known.move_to_end(doctor_id)
        if len(self._known) > KEEP_DOCTORS:
            self._known.popitem(last=False)
        return response.doctor

    async def doctor_day(
        self, doctor_id: str, day: str, who: principals.Principal
    ) -> doctor_pb2.DoctorDay | None:
        """The doctor's day as planned for that date (hours, breaks, leave, capacity; None: no such
        doctor). Never kept: a working plan or a day's availability may change it at any time."""
        try:
            response = await self._doctors.GetDoctorDay(
                doctor_pb2.GetDoctorDayRequest(doctor_id=doctor_id, date=day),
                metadata=_identity(who),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            return _absent_or_raise(err)
        return response.day

    async def day_capacity(self, doctor_id: str, day: str, who: principals.Principal) -> int | None:
        """The doctor's capacity that day (None: no such doctor)."""
        found = await self.doctor_day(doctor_id, day, who)
        return found.capacity if found is not None else None

    async def day_hours(self, doctor_id: str, day: str, who: principals.Principal) -> tuple[str, str]:
        """(day_start, day_end) of the doctor on that date, from the week's plan or the day's
        availability; ("", "") for no such doctor."""
        found = await self.doctor_day(doctor_id, day, who)
        return (found.day_start, found.day_end) if found is not None else ("", "")


def _identity(who: principals.Principal) -> list[tuple[str, str]]:
    return [(principals.SUB_KEY, who.sub), (principals.ROLE_KEY, who.role)]


def _absent_or_raise(err: grpc.aio.AioRpcError) -> None:
    code = err.code()
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return None
    if code == grpc.StatusCode.PERMISSION_DENIED:
        raise PermissionDenied(err.details() or "permission denied")
    raise Unavailable(f"schedule_svc unavailable: {code.name} {err.details() or ''}".strip())
