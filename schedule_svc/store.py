"""The registry of patients and the list of doctors, in Redis.

Registry keys share the hash tag `{registry}` and doctor keys `{doctors}`, so each script touches a
single slot and runs on Redis Cluster too. A phone number names at most one patient: the register
script claims `{registry}:phone:<e164>` and stores the patient in one step, so two concurrent
registrations of the same phone (in any spelling, normalised before) return the same patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from clinic.v1 import common_pb2, doctor_pb2
from clinic_common import lua, redis_io

# The scripts, in schedule_svc/store_*.lua (loaded once, here).
_REGISTER = lua.source("schedule_svc", "store_register_patient")
_UPDATE_PATIENT = lua.source("schedule_svc", "store_update_patient")
_CREATE_DOCTOR = lua.source("schedule_svc", "store_create_doctor")
_UPDATE_DOCTOR = lua.source("schedule_svc", "store_update_doctor")
_READ_SCHEDULE = lua.source("schedule_svc", "store_read_schedule")
_SET_PLAN = lua.source("schedule_svc", "store_set_plan")

# Each key of a family is "<prefix>:<name>" (a patient by id; the patient a phone or an e-mail names).
patient_key, phone_key, no_shows_key, email_key = map(
    redis_io.key_family, ("{registry}:patient", "{registry}:phone", "{registry}:noshows", "{registry}:email")
)

DOCTORS_KEY = "{doctors}:all"
doctor_key = redis_io.key_family("{doctors}:doctor")
revision_key = redis_io.key_family("{doctors}:doctor", ":rev")
plans_key = redis_io.key_family("{doctors}:doctor", ":plans")


def code_key(code: str) -> str:
    return f"{{doctors}}:code:{code.lower()}"


class RegistryStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._register = redis_io.batched_script(redis, _REGISTER)
        self._update = redis_io.batched_script(redis, _UPDATE_PATIENT)

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

    async def get_raw(self, patient_id: str) -> bytes | None:
        return await self._redis.get(patient_key(patient_id))

    async def update(self, read: bytes, old: common_pb2.Patient, new: common_pb2.Patient) -> tuple[str, str]:
        """(updated | conflict | missing | taken, the id holding the new phone when taken)."""
        state, holder = await self._update(
            keys=[
                patient_key(new.id),
                phone_key(old.phone),
                phone_key(new.phone),
                email_key(old.email or "-"),
                email_key(new.email or "-"),
            ],
            args=[
                new.id,
                read,
                new.SerializeToString(),
                "1" if new.phone != old.phone else "0",
                "1" if new.email != old.email else "0",
                old.email,
                new.email,
            ],
        )
        return state.decode(), holder.decode()

    async def by_phone(self, phone: str) -> list[common_pb2.Patient]:
        patient_id = await self._redis.get(phone_key(phone))
        patient = await self.get(patient_id.decode()) if patient_id else None
        return [patient] if patient else []

    async def by_email(self, email: str, limit: int = 100) -> list[common_pb2.Patient]:
        ids = sorted(raw.decode() for raw in await self._redis.smembers(email_key(email)))[:limit]
        rows = await self._redis.mget([patient_key(i) for i in ids]) if ids else []
        return [common_pb2.Patient.FromString(row) for row in rows if row]


@dataclass(frozen=True)
class Schedule:
    """What a doctor's days resolve from, read in one transaction: the doctor, its weekly plans and
    the revision of both."""

    doctor: doctor_pb2.Doctor
    raw: bytes
    revision: int
    plans: list[doctor_pb2.WeeklyPlan]


class DoctorStore:
    """Doctors and their weekly plans. Nothing is cached: UpdateDoctor and SetWeeklyPlan change them,
    and every instance must see the change on its next read."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._create = redis_io.batched_script(redis, _CREATE_DOCTOR)
        self._update = redis_io.batched_script(redis, _UPDATE_DOCTOR)
        self._set_plan = redis_io.batched_script(redis, _SET_PLAN)
        self._read = redis_io.batched_script(redis, _READ_SCHEDULE)

    async def create(self, doctor: doctor_pb2.Doctor) -> str:
        """The id stored for the doctor's code: `doctor.id` when new, another id when the code is taken."""
        stored = await self._create(
            keys=[code_key(doctor.code), doctor_key(doctor.id), DOCTORS_KEY],
            args=[doctor.id, doctor.SerializeToString()],
        )
        return stored.decode()

    async def get(self, doctor_id: str) -> doctor_pb2.Doctor | None:
        found = await self.schedule(doctor_id)
        return found.doctor if found else None

    async def schedule(self, doctor_id: str) -> Schedule | None:
        raw, revision, plans = await self._read(
            keys=[doctor_key(doctor_id), revision_key(doctor_id), plans_key(doctor_id)], args=[]
        )
        if not raw:
            return None
        doctor = doctor_pb2.Doctor.FromString(raw)
        doctor.revision = int(revision)
        return Schedule(doctor, raw, doctor.revision, [doctor_pb2.WeeklyPlan.FromString(p) for p in plans])

    async def update(self, read: bytes, doctor: doctor_pb2.Doctor) -> int:
        """The new revision; 0 when the record changed since it was read, -1 when it is gone."""
        stored = doctor_pb2.Doctor()
        stored.CopyFrom(doctor)
        stored.ClearField("revision")
        return int(
            await self._update(
                keys=[doctor_key(doctor.id), revision_key(doctor.id)],
                args=[read, stored.SerializeToString()],
            )
        )

    async def set_plan(self, plan: doctor_pb2.WeeklyPlan) -> int:
        """The doctor's new revision (-1: no such doctor). A plan from the same date is replaced."""
        return int(
            await self._set_plan(
                keys=[doctor_key(plan.doctor_id), revision_key(plan.doctor_id), plans_key(plan.doctor_id)],
                args=[plan.effective_from, plan.SerializeToString()],
            )
        )

    async def all(self) -> list[doctor_pb2.Doctor]:
        ids = sorted(raw.decode() for raw in await self._redis.smembers(DOCTORS_KEY))
        if not ids:
            return []
        rows = await self._redis.mget([doctor_key(i) for i in ids])
        revs = await self._redis.mget([revision_key(i) for i in ids])
        doctors = []
        for row, rev in zip(rows, revs, strict=True):
            if row:
                doctor = doctor_pb2.Doctor.FromString(row)
                doctor.revision = int(rev or 0)
                doctors.append(doctor)
        return sorted(doctors, key=lambda d: d.code.lower())

    async def schedules(self, doctor_ids: list[str]) -> dict[str, list[doctor_pb2.WeeklyPlan]]:
        """Every listed doctor's weekly plans (for FindSlots: many doctors at once)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for doctor_id in doctor_ids:
                pipe.hvals(plans_key(doctor_id))
            rows = await pipe.execute()
        return {
            doctor_id: [doctor_pb2.WeeklyPlan.FromString(raw) for raw in row]
            for doctor_id, row in zip(doctor_ids, rows, strict=True)
        }
