"""The front desk page in the Envoy bootstrap: its files as direct responses, no token to load them,
every gRPC route as before, and a bootstrap Envoy accepts with a page larger than its 4 KiB default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

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
    assert set(by_path) == {"/", "/index.html", "/app.js", "/app.css"}  # no favicon in this build


def test_the_favicon_is_served_at_both_paths_browsers_ask_for(page):
    (page / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    b = boot(CLINIC_WEB_DIR=str(page))
    by_path = {r["match"].get("path"): r for r in public_routes(b) if "direct_response" in r}
    for path in ("/favicon.ico", "/favicon.svg"):
        headers = {h["header"]["key"]: h["header"]["value"] for h in by_path[path]["response_headers_to_add"]}
        assert headers["content-type"] == "image/svg+xml"
        assert by_path[path]["typed_per_filter_config"]  # no token needed, like the page itself
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


# Issue 21: the receipt's clinic name comes from CLINIC_NAME, filled into index.html's meta by the gateway.

SOURCE_PAGE = Path(__file__).resolve().parents[2] / "web" / "src" / "index.html"


class _Metas(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "meta" and attrs.get("name") == "clinic-name":
            self.names.append(attrs["content"])


def served_index(b: dict) -> str:
    by_path = {r["match"].get("path"): r for r in public_routes(b) if "direct_response" in r}
    body = by_path["/"]["direct_response"]["body"]["inline_string"]
    assert by_path["/index.html"]["direct_response"]["body"]["inline_string"] == body
    return body


@pytest.mark.parametrize(
    "name",
    [
        'Dr. Rao & Sons "Sunrise" <Clinic>',
        "</title><script>alert(1)</script>",
        "Clinic' onload='x",
        "शांति क्लिनिक",
    ],
)
def test_the_clinic_name_is_filled_in_escaped_and_reads_back_exactly(page, name):
    shutil.copy(SOURCE_PAGE, page / "index.html")
    body = served_index(boot(CLINIC_WEB_DIR=str(page), CLINIC_NAME=f"  {name}  "))
    parsed = _Metas()
    parsed.feed(body)
    assert parsed.names == [name]  # stripped, one meta, the very characters
    unfilled = _Metas()
    unfilled.feed(SOURCE_PAGE.read_text())
    assert parsed.tags == unfilled.tags and "<script>alert" not in body  # no markup got in


def test_without_clinic_name_the_page_says_clinic_and_the_source_page_has_the_placeholder(page):
    assert web.CLINIC_NAME_META.search(SOURCE_PAGE.read_text())  # the page the gateway fills has it
    shutil.copy(SOURCE_PAGE, page / "index.html")
    parsed = _Metas()
    parsed.feed(served_index(boot(CLINIC_WEB_DIR=str(page), CLINIC_NAME="   ")))
    assert parsed.names == ["Clinic"]
    assert GatewayConfig.from_env({"CLINIC_AUTH": "none"}).clinic_name == "Clinic"


@pytest.mark.parametrize(
    ("value", "why"),
    [("x" * 81, "81 characters"), ("Sunrise\nClinic", "control character"), ("Sun\x00rise", "control")],
)
def test_a_bad_clinic_name_is_refused_naming_the_variable(value, why):
    with pytest.raises(ConfigError, match=f"CLINIC_NAME.*{why}"):
        GatewayConfig.from_env({"CLINIC_AUTH": "none", "CLINIC_NAME": value})
    assert GatewayConfig.from_env({"CLINIC_AUTH": "none", "CLINIC_NAME": "x" * 80}).clinic_name == "x" * 80


def test_the_gateway_with_a_bad_clinic_name_stops_with_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={"CLINIC_AUTH": "none", "CLINIC_NAME": "y" * 200, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CLINIC_NAME" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
