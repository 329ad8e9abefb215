"""The service table (clinic_common/services.py) is the one list: packaging, the image, compose,
the configs' defaults, the launcher and the NATS/Redis users all agree with it.

No container engine runs here, so the Dockerfile and compose file are read, not run.
"""

from __future__ import annotations

import fnmatch
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from setuptools import find_packages

from clinic_cli import launcher
from clinic_common import services
from clinic_common.config import ConfigError, peer_addrs
from clinic_tools import access

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = {
    "booking_svc": "BookingConfig",
    "discount_svc": "DiscountConfig",
    "notification_svc": "NotificationConfig",
    "schedule_svc": "ScheduleConfig",
    "frontdesk_svc": "FrontDeskConfig",
    "fhir_svc": "FhirConfig",
    "gateway": "GatewayConfig",
}


def test_every_row_is_a_package_with_an_entry_point():
    for row in services.TABLE:
        assert (ROOT / row.package / "__main__.py").is_file(), f"{row.name}: no {row.package}/__main__.py"
        assert (ROOT / row.package / "config.py").is_file(), f"{row.name}: no {row.package}/config.py"


def test_ports_and_variables_are_unique():
    for attr in ("port", "metrics_port", "addr_var", "metrics_var"):
        values = [getattr(row, attr) for row in services.TABLE]
        assert len(values) == len(set(values)), f"two services share a {attr}: {values}"
    assert services.NAMES[-1] == services.GATEWAY  # started last: it dials every backend


def test_pyproject_installs_every_service():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = {
        pkg
        for where in find["where"]
        for pkg in find_packages(ROOT / where, include=find["include"], exclude=find["exclude"])
    }
    for row in services.TABLE:
        assert row.package in found, f"pyproject.toml does not install {row.package}"
    assert {"clinic", "clinic.v1", "clinic_common", "clinic_tools", "clinic_cli"} <= found
    assert not {pkg for pkg in found if pkg.split(".")[0] in ("tests", "bench")}


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_the_image_copies_the_tree_and_keeps_every_service():
    steps = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert ["COPY", ".", "./"] in steps, "the Dockerfile copies the tree, not a list of packages"
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    for row in services.TABLE:
        assert not _ignored(f"{row.package}/__main__.py", patterns), f".dockerignore drops {row.package}"
    for kept_out in (".venv", "var", "gen", "web/node_modules", ".git"):
        assert _ignored(kept_out, patterns), f".dockerignore lets {kept_out} into the image"


def test_compose_starts_every_service():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    gateway = spec["gateway-config"]["environment"]
    for row in services.TABLE:
        if row.name == services.GATEWAY:  # Envoy on its image; its bootstrap rendered by `python -m gateway`
            assert "python -m gateway render" in " ".join(spec["gateway-config"]["command"])
            assert "gateway" in spec
            continue
        assert spec[row.name]["command"] == ["python", "-m", row.package], f"compose lacks {row.name}"
        own = spec[row.name]["environment"][row.addr_var]
        assert own == f"0.0.0.0:{row.port}", f"{row.name} listens on {own} in compose"
        assert gateway[row.addr_var] == f"{row.name}:{row.port}", f"the edge dials {row.name} elsewhere"
        assert spec["gateway"]["depends_on"][row.name] == {"condition": "service_healthy"}


@pytest.mark.parametrize("row", services.TABLE, ids=lambda row: row.name)
def test_every_config_defaults_to_the_table(row):
    module = importlib.import_module(f"{row.package}.config")
    env = {"CLINIC_AUTH": "none"} if row.name == services.GATEWAY else {}
    config = getattr(module, CONFIGS[row.name]).from_env(env)
    assert config.addr == row.default_addr
    assert config.metrics_addr == row.default_metrics_addr


def test_peers_are_dialled_at_the_table_address_and_checked():
    assert peer_addrs({}, "booking_svc") == (services.get("booking_svc").default_addr,)
    with pytest.raises(ConfigError, match="SCHEDULE_SVC_ADDR"):
        peer_addrs({"SCHEDULE_SVC_ADDR": "127.0.0.1:1,nonsense"}, "schedule_svc")


def test_clinic_common_holds_only_what_a_service_loads():
    """Every clinic_common module is loaded by some service process; no service loads the tools."""
    probe = "import importlib, sys; importlib.import_module(sys.argv[1] + '.__main__'); print(*sys.modules)"
    loaded: set[str] = set()
    for row in services.TABLE:
        out = subprocess.run(
            [sys.executable, "-c", probe, row.package], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.split()
        assert not [m for m in out if m.startswith(("clinic_tools", "clinic_cli"))], row.name
        loaded |= {m for m in out if m.startswith("clinic_common.")}
    shared = {f"clinic_common.{p.stem}" for p in (ROOT / "clinic_common").glob("[!_]*.py")}
    assert shared - loaded == set(), "only tools load these: move them to clinic_tools/"


def test_the_launcher_and_the_users_come_from_the_table():
    backends = [row for row in services.TABLE if row.name != services.GATEWAY]
    assert launcher.DEFAULT_PORTS == {row.name: row.port for row in backends}
    assert launcher.DEFAULT_METRICS_PORTS == {row.name: row.metrics_port for row in services.TABLE}
    assert set(access.SERVICES) == set(services.NAMES)
    assert set(access.NATS_PERMISSIONS) == set(services.NAMES) == set(access.REDIS_KEYS)
