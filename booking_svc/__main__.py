"""python -m booking_svc: owns bookings (configured by environment variables only)."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import BookingConfig
from .server import main


def run() -> None:
    logs.configure("booking_svc")
    config = exit_on_config_error(BookingConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
