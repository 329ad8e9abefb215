"""Builds schedule_svc from its config and connections; `main` runs it until stopped."""

from __future__ import annotations

import asyncio

from clinic.v1 import doctor_pb2, doctor_pb2_grpc, patient_pb2, patient_pb2_grpc
from clinic_common import bootstrap, metrics, nats_io, tls
from clinic_common.consumer import ConsumerLoop
from clinic_common.grpc_server import create_server

from .config import ScheduleConfig
from .events import CONSUMER, make_handler
from .handlers import DoctorServicer, PatientServicer
from .places import PlacesStore
from .schedule import Doctors, Places, Registry
from .store import DoctorStore, RegistryStore

SERVICE_NAMES = [
    patient_pb2.DESCRIPTOR.services_by_name["PatientService"].full_name,
    doctor_pb2.DESCRIPTOR.services_by_name["DoctorService"].full_name,
]


async def main(stop: asyncio.Event, config: ScheduleConfig) -> None:
    metrics.serve(config.metrics_addr, "schedule_svc")
    async with bootstrap.connected("schedule_svc", config.connections) as deps:

        async def publish(subject: str, payload: bytes, msg_id: str) -> None:
            await nats_io.publish(deps.js, subject, payload, msg_id)

        doctor_store, places_store = DoctorStore(deps.redis), PlacesStore(deps.redis)
        registry = Registry(RegistryStore(deps.redis), config.country_code, config.timezone)
        doctors = Doctors(doctor_store, places_store, config.catalog, config.timezone, publish=publish)
        places = Places(
            places_store,
            doctor_store,
            config.catalog,
            publish,
            resolve=doctors.resolve,
            offer_s=config.offer_s,
            tz=config.timezone,
        )
        patient_servicer, doctor_servicer = PatientServicer(registry), DoctorServicer(doctors)
        server = create_server(
            config.addr,
            [
                lambda s: patient_pb2_grpc.add_PatientServiceServicer_to_server(patient_servicer, s),
                lambda s: doctor_pb2_grpc.add_DoctorServiceServicer_to_server(doctor_servicer, s),
            ],
            SERVICE_NAMES,
            credentials=tls.server_credentials_from_env(),
        )
        consumer = ConsumerLoop(deps.nc, deps.js, CONSUMER, make_handler(places, registry))
        sweep_period = min(1.0, config.offer_s / 4)
        await bootstrap.serve(
            server,
            stop,
            consumers=[consumer],
            duties=[bootstrap.every(sweep_period, places.sweep, stop, "offer-sweeper")],
        )
