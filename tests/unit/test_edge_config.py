"""The rendered Envoy bootstrap: routes from data, stream timeouts off, and Envoy itself accepts it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from clinic_common import tls
from clinic_common.config import ADDR_VARS
from clinic_tools import embedded
from gateway import routes
from gateway.config import GatewayConfig
from gateway.envoy import _token_bucket, render

ROOT = Path(__file__).resolve().parents[2]
SECRET = "unit-test-secret-0123456789abcdefghij"
ADMIN = {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}


# The edge presents internal TLS files to the services, as every process does (unless CLINIC_AUTH=none).
PKI = tls.ensure_dev_pki(Path(tempfile.mkdtemp(prefix="edge-unit-pki-")))


def bootstrap(**env: str) -> dict:
    env = {"CLINIC_JWT_SECRET": SECRET, "CLINIC_WEB_DIR": "off", **PKI, **env}  # the page: test_edge_page.py
    return render(GatewayConfig.from_env(env), ADMIN)


def free_addrs() -> dict[str, str]:
    """Validation checks that the listen ports are free: not 50051, which a `make run` may hold."""
    return {
        "CLINIC_GATEWAY_ADDR": f"127.0.0.1:{embedded.free_port()}",
        "CLINIC_GATEWAY_METRICS_ADDR": f"127.0.0.1:{embedded.free_port()}",
    }


def public_routes(boot: dict) -> list[dict]:
    (listener,) = [x for x in boot["static_resources"]["listeners"] if x["name"] == "public"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def route_for(boot: dict, path: str) -> dict:
    for route in public_routes(boot):
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            return route
    raise AssertionError(f"no route for {path}")


def test_every_public_service_with_a_deployed_backend_has_a_route():
    boot = bootstrap()
    prefixes = {r["match"]["prefix"] for r in public_routes(boot) if "prefix" in r["match"]}
    deployed = {s for s, backend in routes.SERVICES.items() if backend in ADDR_VARS}
    assert {f"/{s}/" for s in deployed} <= prefixes
    # A service whose backend does not exist yet has no route (UNIMPLEMENTED), not a broken one.
    missing = {s for s, backend in routes.SERVICES.items() if backend not in ADDR_VARS}
    assert not {f"/{s}/" for s in missing} & prefixes
    clusters = {c["name"] for c in boot["static_resources"]["clusters"]}
    for route in public_routes(boot):
        if "direct_response" not in route:  # /openapi.json is Envoy's own answer
            assert route["route"]["cluster"] in clusters


def test_a_single_method_routed_apart_goes_to_its_backend_before_its_services_prefix():
    boot = bootstrap()
    assert route_for(boot, "/clinic.v1.AdminService/GetDaySummary")["route"]["cluster"] == "booking_svc"
    assert route_for(boot, "/clinic.v1.AdminService/GetQuota")["route"]["cluster"] == "discount_svc"


def test_watch_streams_have_no_timeouts_and_unary_calls_do():
    boot = bootstrap()
    for path in (
        "/clinic.v1.NotificationService/WatchBooking",
        "/clinic.v1.NotificationService/WatchPatient",
    ):
        action = route_for(boot, path)["route"]
        assert action["timeout"] == "0s" and action["idle_timeout"] == "0s", path  # > 15 s idle is fine
        assert "max_stream_duration" not in action  # the caller's deadline ends it, as DEADLINE_EXCEEDED
    unary = route_for(boot, "/clinic.v1.BookingService/CreateBooking")["route"]
    assert unary["timeout"] == "15s" and "idle_timeout" not in unary
    assert "unavailable" not in unary["retry_policy"]["retry_on"]  # not idempotent without request_id
    assert (
        "unavailable"
        in route_for(boot, "/clinic.v1.BookingService/GetBooking")["route"]["retry_policy"]["retry_on"]
    )


def test_open_routes_need_no_token_and_drop_identity_headers():
    boot = bootstrap()
    for path in (
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ):
        route = route_for(boot, path)
        assert route["typed_per_filter_config"]["envoy.filters.http.jwt_authn"]["disabled"] is True
        assert {"x-clinic-sub", "x-clinic-role"} <= set(route["request_headers_to_remove"])


@pytest.mark.parametrize(
    ("rate", "tokens", "interval"), [(20, 1, "0.05s"), (30, 3, "0.10s"), (7, 7, "1.00s")]
)
def test_rate_limit_buckets_refill_at_exactly_the_configured_rate(rate, tokens, interval):
    bucket = _token_bucket(rate, 40)
    assert (bucket["tokens_per_fill"], bucket["fill_interval"], bucket["max_tokens"]) == (
        tokens,
        interval,
        40,
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    args = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
    ]
    args += ["-keyout", "k.pem", "-out", "c.pem", "-subj", "/CN=clinic-internal"]
    subprocess.run(
        ["openssl", *args, "-addext", "subjectAltName=DNS:clinic-internal"],
        cwd=d,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return d


@pytest.mark.parametrize("variant", ["jwt", "none", "tls"])
def test_envoy_accepts_the_rendered_bootstrap(variant, certs):
    env = {**os.environ, "CLINIC_JWT_SECRET": SECRET, "PYTHONPATH": str(ROOT), **PKI, **free_addrs()}
    if variant == "none":
        env["CLINIC_AUTH"] = "none"
    if variant == "tls":
        cert, key = str(certs / "c.pem"), str(certs / "k.pem")
        env.update(
            CLINIC_TLS_CERT=cert,
            CLINIC_TLS_KEY=key,
            CLINIC_INTERNAL_TLS_CERT=cert,
            CLINIC_INTERNAL_TLS_KEY=key,
            CLINIC_INTERNAL_TLS_CA=cert,
            BOOKING_SVC_ADDR="127.0.0.1:1,127.0.0.1:2",
        )
    assert_envoy_validates(env)


def assert_envoy_validates(env: dict[str, str]) -> None:
    """`python -m gateway validate` renders the bootstrap from env and Envoy itself accepts it."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "validate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_internal_tls_presents_a_certificate_and_checks_the_name(certs):
    cert, key = str(certs / "c.pem"), str(certs / "k.pem")
    boot = bootstrap(
        CLINIC_INTERNAL_TLS_CERT=cert,
        CLINIC_INTERNAL_TLS_KEY=key,
        CLINIC_INTERNAL_TLS_CA=cert,
        CLINIC_INTERNAL_TLS_NAME="svc.clinic",
    )
    for cluster in boot["static_resources"]["clusters"]:
        if cluster["name"] == "admin":
            assert "transport_socket" not in cluster
            continue
        upstream = cluster["transport_socket"]["typed_config"]
        assert upstream["sni"] == "svc.clinic"
        context = upstream["common_tls_context"]
        assert context["tls_certificates"][0]["certificate_chain"]["filename"] == cert
        assert context["validation_context"]["match_typed_subject_alt_names"][0]["matcher"] == {
            "exact": "svc.clinic"
        }
    plain = bootstrap(CLINIC_AUTH="none", **dict.fromkeys(tls.VARS, ""))  # a development machine only
    assert all("transport_socket" not in c for c in plain["static_resources"]["clusters"])
