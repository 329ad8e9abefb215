"""The front desk page, served by Envoy itself: each file of web/dist as a route's direct_response.

No second server and no second port: the page comes from the public address and talks back to it
with grpc-web (same origin, so no CORS). The files are read when the bootstrap is rendered; a rebuilt
page is served from the gateway's next start.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinic_common.config import ConfigError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "web" / "dist"  # built by `make web`
MAX_BODY_BYTES = 2 * 1024 * 1024  # RouteConfiguration.max_direct_response_body_size_bytes (default 4 KiB)

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


def routes(directory: Path, disabled_filters: dict[str, Any]) -> list[dict[str, Any]]:
    """GET routes answering with the page's files; no token is needed to load the page itself."""
    out = []
    for path, (name, content_type) in FILES.items():
        if name in OPTIONAL and not (directory / name).is_file():
            continue
        body = (directory / name).read_text(encoding="utf-8")
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
