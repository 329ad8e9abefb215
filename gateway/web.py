"""The front desk page, served by Envoy itself: each file of web/dist as a route's direct_response.

No second server and no second port: the page comes from the public address and talks back to it
with grpc-web (same origin, so no CORS). The files are read when the bootstrap is rendered; a rebuilt
page is served from the gateway's next start.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinic_common.config import ConfigError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "web" / "dist"  # built by `make web`
MAX_BODY_BYTES = 2 * 1024 * 1024  # RouteConfiguration.max_direct_response_body_size_bytes (default 4 KiB)

DEFAULT_CLINIC_NAME = "Clinic"  # as `clinic receipt` (clinic_cli/desk.py)
MAX_CLINIC_NAME = 80  # printed on a receipt's first line
# The page's placeholder for the clinic's name (web/src/index.html), filled when the bootstrap is rendered.
CLINIC_NAME_META = re.compile(r'<meta name="clinic-name" content="[^"]*">')

OPTIONAL = frozenset({"favicon.svg"})  # a page built before it had one is still served

# path -> (file, content type)
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    # Browsers ask for /favicon.ico whatever the page links: answer both, with the same picture.
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/favicon.ico": ("favicon.svg", "image/svg+xml"),
}

# The page loads only its own files and calls only its own origin.
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def page_dir(env: Mapping[str, str]) -> Path | None:
    """CLINIC_WEB_DIR (default web/dist when built; "off": no page). None when there is no page."""
    raw = env.get("CLINIC_WEB_DIR", "").strip()
    if raw == "off":
        return None
    path = Path(raw).resolve() if raw else DEFAULT_DIR
    if (path / "index.html").is_file():
        return path
    if raw:
        raise ConfigError(f"CLINIC_WEB_DIR={raw!r} holds no index.html (build it with `make web`)")
    return None


def clinic_name(env: Mapping[str, str]) -> str:
    """CLINIC_NAME, stripped (default "Clinic"): the name the page prints on a receipt."""
    name = env.get("CLINIC_NAME", "").strip() or DEFAULT_CLINIC_NAME
    if len(name) > MAX_CLINIC_NAME:
        raise ConfigError(f"CLINIC_NAME is {len(name)} characters long; at most {MAX_CLINIC_NAME}")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ConfigError("CLINIC_NAME holds a control character (a newline, tab or the like)")
    return name


def with_clinic_name(page: str, name: str) -> str:
    """index.html with its clinic-name meta filled in, HTML-escaped (quotes too: it is an attribute)."""
    meta = f'<meta name="clinic-name" content="{html.escape(name, quote=True)}">'
    return CLINIC_NAME_META.sub(lambda _: meta, page, count=1)


def routes(
    directory: Path, disabled_filters: dict[str, Any], clinic: str = DEFAULT_CLINIC_NAME
) -> list[dict[str, Any]]:
    """GET routes answering with the page's files; no token is needed to load the page itself."""
    out = []
    for path, (name, content_type) in FILES.items():
        if name in OPTIONAL and not (directory / name).is_file():
            continue
        body = (directory / name).read_text(encoding="utf-8")
        if name == "index.html":
            body = with_clinic_name(body, clinic)
        if len(body.encode()) > MAX_BODY_BYTES:
            raise ConfigError(f"{directory / name} is larger than {MAX_BODY_BYTES} bytes")
        out.append(
            {
                "name": f"page{path}",
                "match": {
                    "path": path,
                    "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}],
                },
                "direct_response": {"status": 200, "body": {"inline_string": body}},
                "response_headers_to_add": [
                    {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                    for key, value in {"content-type": content_type, **HEADERS}.items()
                ],
                "typed_per_filter_config": disabled_filters,
            }
        )
    return out
