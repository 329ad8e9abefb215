"""notification_svc reads the registry (schedule_svc) over gRPC: who the patient is, how they may be
reached, which doctor they see. Answers are kept briefly: one told event fans out to several
channels, and a reminder run reads the same doctors again and again.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import grpc

from clinic.v1 import common_pb2, doctor_pb2, doctor_pb2_grpc, patient_pb2, patient_pb2_grpc
from clinic_common import principal as principals
from clinic_common.errors import Unavailable

CALL_TIMEOUT_S = 3.0
KEEP = 2000
PATIENT_TTL_S = 30.0  # a consent withdrawn is honoured within this long
DOCTOR_TTL_S = 300.0
DAY_TTL_S = 30.0  # a day's hours (its working plan, SetAvailability) reach new reminders within this
# The registry's own rules apply: the notifier reads as the front desk does.
SELF = principals.Principal(sub="notification_svc", role=principals.STAFF)


class Directory:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._patients = patient_pb2_grpc.PatientServiceStub(channel)
        self._doctors = doctor_pb2_grpc.DoctorServiceStub(channel)
        self._cache: OrderedDict[str, tuple[float, object]] = OrderedDict()

    async def patient(self, patient_id: str) -> common_pb2.Patient | None:
        """The registered patient, or None (not in the registry: no channel needs consent)."""

        async def read():
            response = await self._patients.GetPatient(
                patient_pb2.GetPatientRequest(patient_id=patient_id),
                metadata=SELF.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            return response.patient

        return await self._cached(f"p:{patient_id}", PATIENT_TTL_S, read)

    async def doctor(self, doctor_id: str) -> doctor_pb2.Doctor | None:
        if not doctor_id:
            return None

        async def read():
            response = await self._doctors.GetDoctor(
                doctor_pb2.GetDoctorRequest(doctor_id=doctor_id),
                metadata=SELF.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            return response.doctor

        return await self._cached(f"d:{doctor_id}", DOCTOR_TTL_S, read)

    async def day_start(self, doctor_id: str, day: str) -> str:
        """When the doctor's day starts on that date (the week's plan or the day's availability, not
        the doctor's usual hours): a token's appointment time. "" without a doctor."""
        if not doctor_id:
            return ""

        async def read():
            response = await self._doctors.GetDoctorDay(
                doctor_pb2.GetDoctorDayRequest(doctor_id=doctor_id, date=day),
                metadata=SELF.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            return response.day.day_start

        return await self._cached(f"h:{doctor_id}:{day}", DAY_TTL_S, read) or ""

    async def _cached(self, key: str, ttl_s: float, read):
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            value = await read()
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise Unavailable(f"schedule_svc unavailable: {err.code().name}") from None
            value = None
        self._cache[key] = (now + ttl_s, value)
        self._cache.move_to_end(key)
        if len(self._cache) > KEEP:
            self._cache.popitem(last=False)
        return value
