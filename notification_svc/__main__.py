"""python -m notification_svc: streams booking events to clients; notifies patients."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import NotificationConfig
from .server import main


def run() -> None:
    logs.configure("notification_svc")
    config = exit_on_config_error(NotificationConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
