"""W3C trace context carried from the edge through gRPC metadata and NATS headers, and OpenTelemetry spans.

One trace id follows a booking through every service and appears in every log line about it
(`trace_id`). With an exporter configured by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf by default, or grpc;
OTEL_TRACES_EXPORTER otlp, console or none; OTEL_SDK_DISABLED), every gRPC call a service answers
is a SERVER span and every NATS message it handles a CONSUMER span, parented by the traceparent that
came with it, and exported by the OpenTelemetry SDK. Unset, no SDK is loaded and a span costs one
context-variable write: the traceparent is passed along and logged, as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import structlog

from clinic_common.config import ConfigError

HEADER = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("traceparent", default="")
PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = ("otlp", "console", "none")


class _State:
    tracer: Any = None  # an opentelemetry Tracer once configure() turned exporting on
    provider: Any = None


_state = _State()


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def valid(value: str | None) -> bool:
    return bool(value) and bool(_FORMAT.match(value))


def trace_id(value: str) -> str:
    match = _FORMAT.match(value or "")
    return match.group(1) if match else ""


def bind(traceparent: str) -> None:
    """Make `traceparent` current for this task: logs get its trace id, publishes carry it on."""
    if valid(traceparent):
        _current.set(traceparent)
        structlog.contextvars.bind_contextvars(trace_id=trace_id(traceparent))


def current() -> str:
    return _current.get()


def child() -> str:
    """The header for an outgoing message: same trace; the current span is its parent when exporting."""
    parent = _current.get()
    if not parent or _state.tracer is not None:
        return parent  # with spans on, the current one is the span this message was sent from
    return new_traceparent(trace_id(parent))


# ---- OpenTelemetry -------------------------------------------------------------------------


def enabled() -> bool:
    return _state.tracer is not None


def exporter_from_env(env: Mapping[str, str]) -> str:
    """'otlp', 'console' or 'none' from the standard variables (one ConfigError line if malformed)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none"
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen and chosen not in EXPORTERS:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={chosen!r} must be one of {', '.join(EXPORTERS)}")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if chosen:
        return chosen
    return "otlp" if endpoint.strip() else "none"


def protocol_from_env(env: Mapping[str, str]) -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value:
            if value not in PROTOCOLS:
                raise ConfigError(f"{name}={value!r} must be http/protobuf or grpc")
            return value
    return "http/protobuf"


def configure(service: str, env: Mapping[str, str] | None = None, exporter: Any = None) -> bool:
    """Export this process's spans as `service` when the environment (or `exporter`) asks for it."""
    env = os.environ if env is None else env
    kind = "given" if exporter is not None else exporter_from_env(env)
    if kind == "none":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        exporter = _exporter(kind, env)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    given = kind == "given"  # tests hand in the SDK's in-memory exporter: export at once
    provider.add_span_processor(SimpleSpanProcessor(exporter) if given else BatchSpanProcessor(exporter))
    _state.provider, _state.tracer = provider, provider.get_tracer("clinic")
    return True


def _exporter(kind: str, env: Mapping[str, str]) -> Any:
    if kind == "console":  # the SDK's console exporter, one JSON line per span on stdout
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n")
    if protocol_from_env(env) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: the OTEL_* variables


def shutdown() -> None:
    """Flush and stop the exporter (the process is ending)."""
    if _state.provider is not None:
        _state.provider.shutdown()
        _state.provider = _state.tracer = None


_KINDS = {"server": "SERVER", "consumer": "CONSUMER", "client": "CLIENT", "producer": "PRODUCER"}


@contextlib.contextmanager
def _otel_span(name: str, kind: str, parent: str, attributes: Mapping[str, Any]) -> Iterator[None]:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({HEADER: parent}) if valid(parent) else None
    kind_value = getattr(trace.SpanKind, _KINDS[kind])
    with _state.tracer.start_as_current_span(
        name, context=context, kind=kind_value, attributes=dict(attributes)
    ):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        token = _current.set(carrier.get(HEADER, parent))
        structlog.contextvars.bind_contextvars(trace_id=trace_id(carrier.get(HEADER, "")))
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a stream's generator may finish in another context
                _current.reset(token)


_NOTHING = contextlib.nullcontext()


def span(name: str, kind: str, parent: str = "", **attributes: Any) -> contextlib.AbstractContextManager:
    """A span around handling one call or message whose trace context is `parent` (a traceparent).

    Off: `parent` becomes current (logs and publishes carry it) and nothing else happens."""
    if _state.tracer is None:
        bind(parent)
        return _NOTHING
    return _otel_span(name, kind, parent, attributes)
