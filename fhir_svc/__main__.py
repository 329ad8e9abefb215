"""python -m fhir_svc: the FHIR R4 facade (Patient, Practitioner, Schedule, Slot, Appointment)."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import FhirConfig
from .server import main


def run() -> None:
    logs.configure("fhir_svc")
    config = exit_on_config_error(FhirConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
