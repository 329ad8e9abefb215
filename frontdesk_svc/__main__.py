"""python -m frontdesk_svc: check-in and the live queues of the day."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import FrontDeskConfig
from .server import main


def run() -> None:
    logs.configure("frontdesk_svc")
    config = exit_on_config_error(FrontDeskConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
