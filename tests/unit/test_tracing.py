"""clinic_common.tracing: off unless the OTEL_* variables ask, spans parented by the traceparent that came in.

The exporter is the OpenTelemetry SDK's own in-memory one; the spans crossing processes and NATS are
tests/integration/test_traces.py.
"""

from __future__ import annotations

import timeit

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clinic_common import tracing
from clinic_common.config import ConfigError

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    assert tracing.configure("booking_svc", {}, exporter=exporter)
    yield exporter
    tracing.shutdown()


def test_off_unless_an_exporter_is_configured():
    assert tracing.exporter_from_env({}) == "none"
    assert tracing.exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert (
        tracing.exporter_from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
        )
        == "none"
    )
    assert not tracing.configure("booking_svc", {})
    assert not tracing.enabled()
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        tracing.protocol_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert tracing.protocol_from_env({}) == "http/protobuf"
    assert tracing.protocol_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"


def test_off_a_span_only_passes_the_traceparent_along():
    with tracing.span("Booking/CreateBooking", "server", PARENT):
        assert tracing.current() == PARENT
        child = tracing.child()
    assert tracing.trace_id(child) == tracing.trace_id(PARENT) and child != PARENT


def test_off_costs_next_to_nothing():
    def one() -> None:
        with tracing.span("Booking/CreateBooking", "server", PARENT, **{"rpc.system": "grpc"}):
            pass

    per_call_s = min(timeit.repeat(one, number=2000, repeat=3)) / 2000
    assert per_call_s < 20e-6, f"{per_call_s * 1e6:.1f} µs per span with tracing off"


def test_a_span_is_the_child_of_the_traceparent_and_the_parent_of_what_is_published(exported):
    with tracing.span("Booking/CreateBooking", "server", PARENT, **{"rpc.system": "grpc"}):
        header = tracing.child()
        with tracing.span("process discount-svc", "consumer", header):
            pass
    inner, outer = exported.get_finished_spans()
    assert format(outer.context.trace_id, "032x") == tracing.trace_id(PARENT)
    assert format(outer.parent.span_id, "016x") == PARENT.split("-")[2] and outer.parent.is_remote
    assert outer.kind.name == "SERVER" and inner.kind.name == "CONSUMER"
    assert inner.parent.span_id == outer.context.span_id  # what the message carried
    assert header.split("-")[2] == format(outer.context.span_id, "016x")
    assert outer.resource.attributes["service.name"] == "booking_svc"


def test_a_failure_inside_a_span_marks_it(exported):
    with pytest.raises(RuntimeError), tracing.span("Booking/CreateBooking", "server", ""):
        raise RuntimeError("boom")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.parent is None


def test_the_edge_traces_only_with_an_otlp_endpoint():
    from tests.unit.test_edge_config import bootstrap

    def hcm(boot: dict) -> dict:
        (listener,) = [x for x in boot["static_resources"]["listeners"] if x["name"] == "public"]
        return listener["filter_chains"][0]["filters"][0]["typed_config"]

    off = bootstrap()
    assert "tracing" not in hcm(off)
    assert "otlp_collector" not in {c["name"] for c in off["static_resources"]["clusters"]}
    on = bootstrap(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318")
    provider = hcm(on)["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["http_service"]["http_uri"]["uri"] == "http://collector:4318/v1/traces"
    grpc = bootstrap(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert "grpc_service" in hcm(grpc)["tracing"]["provider"]["typed_config"]
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318'"):
        bootstrap(OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318")
