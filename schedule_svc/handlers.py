"""clinic.v1.PatientService and clinic.v1.DoctorService: thin gRPC handlers over the use cases."""

from __future__ import annotations

from clinic.v1 import doctor_pb2, doctor_pb2_grpc, patient_pb2, patient_pb2_grpc
from clinic_common import rpc

from .schedule import Doctors, Registry


class PatientServicer(patient_pb2_grpc.PatientServiceServicer):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @rpc.unary
    async def RegisterPatient(self, request, context, who):
        patient, created = await self._registry.register(request, who)
        return patient_pb2.RegisterPatientResponse(patient=patient, created=created)

    @rpc.unary
    async def GetPatient(self, request, context, who):
        return patient_pb2.GetPatientResponse(patient=await self._registry.get(request.patient_id, who))

    @rpc.unary
    async def FindPatients(self, request, context, who):
        patients = await self._registry.find(request.phone, request.email, who)
        return patient_pb2.FindPatientsResponse(patients=patients)

    @rpc.unary
    async def UpdatePatient(self, request, context, who):
        return patient_pb2.UpdatePatientResponse(patient=await self._registry.update(request, who))


class DoctorServicer(doctor_pb2_grpc.DoctorServiceServicer):
    def __init__(self, doctors: Doctors) -> None:
        self._doctors = doctors

    @rpc.unary
    async def CreateDoctor(self, request, context, who):
        return doctor_pb2.CreateDoctorResponse(doctor=await self._doctors.create(request, who))

    @rpc.unary
    async def ListDoctors(self, request, context, who):
        doctors = await self._doctors.list(request.service_id, request.specialty, request.include_retired)
        return doctor_pb2.ListDoctorsResponse(doctors=doctors)

    @rpc.unary
    async def GetDoctor(self, request, context, who):
        return doctor_pb2.GetDoctorResponse(doctor=await self._doctors.get(request.doctor_id))

    @rpc.unary
    async def SetAvailability(self, request, context, who):
        day, affected = await self._doctors.set_availability(request, who)
        return doctor_pb2.SetAvailabilityResponse(day=day, affected_bookings=affected)

    @rpc.unary
    async def GetDoctorDay(self, request, context, who):
        return doctor_pb2.GetDoctorDayResponse(day=await self._doctors.day(request.doctor_id, request.date))

    @rpc.unary
    async def UpdateDoctor(self, request, context, who):
        return doctor_pb2.UpdateDoctorResponse(doctor=await self._doctors.update(request, who))

    @rpc.unary
    async def SetWeeklyPlan(self, request, context, who):
        return doctor_pb2.SetWeeklyPlanResponse(plan=await self._doctors.set_weekly_plan(request, who))

    @rpc.unary
    async def SetLeave(self, request, context, who):
        days, affected = await self._doctors.set_leave(request, who)
        return doctor_pb2.SetLeaveResponse(days=days, affected_bookings=affected)

    @rpc.unary
    async def FindSlots(self, request, context, who):
        return doctor_pb2.FindSlotsResponse(slots=await self._doctors.find_slots(request))
