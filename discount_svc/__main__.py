"""python -m discount_svc: R1, blocklist and R2 decisions; AdminService."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import DiscountConfig
from .server import main


def run() -> None:
    logs.configure("discount_svc")
    config = exit_on_config_error(DiscountConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
