"""python -m schedule_svc: the registry, doctors and their days, and the places bookings hold."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import ScheduleConfig
from .server import main


def run() -> None:
    logs.configure("schedule_svc")
    config = exit_on_config_error(ScheduleConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
