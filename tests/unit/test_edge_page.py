"""The front desk page in the Envoy bootstrap: its files as direct responses, no token to load them,
every gRPC route as before, and a bootstrap Envoy accepts with a page larger than its 4 KiB default."""

from __future__ import annotations

import os

import pytest

from clinic_common.config import ConfigError
from gateway import web
from gateway.config import GatewayConfig
from gateway.envoy import render
from tests.unit.test_edge_config import (
    ADMIN,
    PKI,
    SECRET,
    assert_envoy_validates,
    free_addrs,
    public_routes,
)

BIG_SCRIPT = "console.log('x');\n" * 20_000  # ~340 KB, like the bundled clients


@pytest.fixture
def page(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>₹ desk</title>", encoding="utf-8")
    (tmp_path / "app.js").write_text(BIG_SCRIPT)
    (tmp_path / "app.css").write_text("body{}")
    return tmp_path


def boot(**env: str) -> dict:
    # Only the page's direct responses here (/openapi.json is one too: tests/unit/test_json_api.py).
    env = {"CLINIC_JWT_SECRET": SECRET, "CLINIC_PROTO_DESCRIPTORS": "off", **PKI, **env}
    return render(GatewayConfig.from_env(env), ADMIN)


def route_config(b: dict) -> dict:
    (listener,) = [x for x in b["static_resources"]["listeners"] if x["name"] == "public"]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]


def test_each_file_is_a_direct_response_with_its_type_and_no_token_check(page):
    b = boot(CLINIC_WEB_DIR=str(page))
    by_path = {r["match"].get("path"): r for r in public_routes(b) if "direct_response" in r}
    assert set(by_path) == {"/", "/index.html", "/app.js", "/app.css"}
    assert by_path["/app.js"]["direct_response"]["body"]["inline_string"] == BIG_SCRIPT
    assert "₹ desk" in by_path["/"]["direct_response"]["body"]["inline_string"]
    headers = {
        h["header"]["key"]: h["header"]["value"] for h in by_path["/app.js"]["response_headers_to_add"]
    }
    assert headers["content-type"].startswith("text/javascript")
    assert "connect-src 'self'" in headers["content-security-policy"]
    for route in by_path.values():
        assert set(route["typed_per_filter_config"]) == {
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.rbac",
        }
        assert route["match"]["headers"][0]["name"] == ":method"  # GET/HEAD only: a POST to / is not the page
    assert route_config(b)["max_direct_response_body_size_bytes"] >= len(BIG_SCRIPT)


def test_grpc_routes_are_the_same_with_and_without_the_page(page):
    def grpc_routes(b: dict) -> list[dict]:
        return [r for r in public_routes(b) if "route" in r]

    assert grpc_routes(boot(CLINIC_WEB_DIR=str(page))) == grpc_routes(boot(CLINIC_WEB_DIR="off"))
    # ...and the page's routes come first, so "/" never shadows a service (exact paths anyway).
    assert all("direct_response" not in r for r in public_routes(boot(CLINIC_WEB_DIR="off")))


def test_no_page_when_off_or_not_built_and_a_clear_error_for_a_wrong_directory(tmp_path):
    assert web.page_dir({"CLINIC_WEB_DIR": "off"}) is None
    with pytest.raises(ConfigError, match=r"holds no index\.html"):
        web.page_dir({"CLINIC_WEB_DIR": str(tmp_path)})


def test_a_file_over_the_limit_is_refused(page, monkeypatch):
    monkeypatch.setattr(web, "MAX_BODY_BYTES", 1000)
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        boot(CLINIC_WEB_DIR=str(page))


def test_envoy_accepts_the_bootstrap_with_the_page(page):
    env = {**os.environ, "CLINIC_JWT_SECRET": SECRET, **PKI, **free_addrs(), "CLINIC_WEB_DIR": str(page)}
    assert_envoy_validates(env)
