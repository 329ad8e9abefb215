"""The registry of patients and the list of doctors, in Redis.

Registry keys share the hash tag `{registry}` and doctor keys `{doctors}`, so each script touches a
single slot and runs on Redis Cluster too. A phone number names at most one patient: the register
script claims `{registry}:phone:<e164>` and stores the patient in one step, so two concurrent
registrations of the same phone (in any spelling, normalised before) return the same patient.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from clinic.v1 import common_pb2, doctor_pb2
from clinic_common import redis_io

_REGISTER = """
-- KEYS: patient, phone index, email index (or a placeholder)   ARGV: id, record, has email
local existing = redis.call('GET', KEYS[2])
if existing then return {0, existing} end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SADD', KEYS[3], ARGV[1]) end
return {1, ARGV[1]}
"""

_CREATE_DOCTOR = """
-- KEYS: code index, doctor, all doctors   ARGV: id, record
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return ARGV[1]
"""


def patient_key(patient_id: str) -> str:
    return f"{{registry}}:patient:{patient_id}"


def phone_key(phone: str) -> str:
    return f"{{registry}}:phone:{phone}"


def no_shows_key(patient_id: str) -> str:
    return f"{{registry}}:noshows:{patient_id}"


def email_key(email: str) -> str:
    return f"{{registry}}:email:{email}"


DOCTORS_KEY = "{doctors}:all"


def doctor_key(doctor_id: str) -> str:
    return f"{{doctors}}:doctor:{doctor_id}"


def code_key(code: str) -> str:
    return f"{{doctors}}:code:{code.lower()}"


class RegistryStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._register = redis_io.batched_script(redis, _REGISTER)

    async def register(self, patient: common_pb2.Patient) -> tuple[bool, str]:
        """(created, id): the new patient's id, or the id the phone already names."""
        created, patient_id = await self._register(
            keys=[patient_key(patient.id), phone_key(patient.phone), email_key(patient.email or "-")],
            args=[patient.id, patient.SerializeToString(), "1" if patient.email else "0"],
        )
        return bool(created), patient_id.decode()

    async def get(self, patient_id: str) -> common_pb2.Patient | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(patient_key(patient_id))
            pipe.scard(no_shows_key(patient_id))
            data, no_shows = await pipe.execute()
        if not data:
            return None
        patient = common_pb2.Patient.FromString(data)
        patient.no_show_count = no_shows
        return patient

    async def count_no_show(self, patient_id: str, booking_id: str) -> None:
        """Once per booking, however often the message comes."""
        await self._redis.sadd(no_shows_key(patient_id), booking_id)

    async def by_phone(self, phone: str) -> list[common_pb2.Patient]:
        patient_id = await self._redis.get(phone_key(phone))
        patient = await self.get(patient_id.decode()) if patient_id else None
        return [patient] if patient else []

    async def by_email(self, email: str, limit: int = 100) -> list[common_pb2.Patient]:
        ids = sorted(raw.decode() for raw in await self._redis.smembers(email_key(email)))[:limit]
        rows = await self._redis.mget([patient_key(i) for i in ids]) if ids else []
        return [common_pb2.Patient.FromString(row) for row in rows if row]


class DoctorStore:
    """Doctors never change once created, so every instance keeps the ones it has read."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._create = redis_io.batched_script(redis, _CREATE_DOCTOR)
        self._known: dict[str, doctor_pb2.Doctor] = {}

    async def create(self, doctor: doctor_pb2.Doctor) -> str:
        """The id stored for the doctor's code: `doctor.id` when new, another id when the code is taken."""
        stored = await self._create(
            keys=[code_key(doctor.code), doctor_key(doctor.id), DOCTORS_KEY],
            args=[doctor.id, doctor.SerializeToString()],
        )
        return stored.decode()

    async def get(self, doctor_id: str) -> doctor_pb2.Doctor | None:
        doctor = self._known.get(doctor_id)
        if doctor is None:
            data = await self._redis.get(doctor_key(doctor_id))
            if not data:
                return None
            doctor = self._known[doctor_id] = doctor_pb2.Doctor.FromString(data)
        return doctor

    async def all(self) -> list[doctor_pb2.Doctor]:
        ids = sorted(raw.decode() for raw in await self._redis.smembers(DOCTORS_KEY))
        missing = [i for i in ids if i not in self._known]
        if missing:
            for doctor_id, row in zip(
                missing, await self._redis.mget([doctor_key(i) for i in missing]), strict=True
            ):
                if row:
                    self._known[doctor_id] = doctor_pb2.Doctor.FromString(row)
        return sorted((self._known[i] for i in ids if i in self._known), key=lambda d: d.code.lower())
