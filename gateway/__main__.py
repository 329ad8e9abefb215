"""python -m gateway: the single public gRPC entry point."""

from clinic_common import logs, runtime
from clinic_common.config import exit_on_config_error

from .config import GatewayConfig
from .server import main


def run() -> None:
    logs.configure("gateway")
    config = exit_on_config_error(GatewayConfig.from_env)()
    runtime.run(lambda stop: main(stop, config))


if __name__ == "__main__":
    run()
