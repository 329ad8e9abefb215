"""One booking is one trace: the edge's span, then booking_svc, schedule_svc, discount_svc, notification_svc.

No OTLP receiver this machine can trust installs from a registry (the one PyPI wheel that ships a
collector binary has no known publisher), so the services here use the OpenTelemetry SDK's own
console exporter (OTEL_TRACES_EXPORTER=console: one JSON span per line in each service's log) and the
edge its OTLP tracer (OTEL_EXPORTER_OTLP_ENDPOINT) towards a port nobody answers: the edge's span is
seen as the parent it hands on, which is neither the caller's span nor any service's.
"""

from __future__ import annotations

import json
import secrets

import pytest

from clinic.v1 import booking_pb2, common_pb2
from clinic_common import tracing
from clinic_tools import embedded
from tests.harness import Client, Servers, System, future_date, patient, wait_for

OTEL = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
}
TRACED = {"booking_svc", "schedule_svc", "discount_svc", "notification_svc"}


class TracedSystem(System):
    def service_env(self, name: str) -> dict[str, str]:
        env = super().service_env(name)
        if name == "gateway":  # the edge exports over OTLP (Envoy has no console exporter)
            env.pop("OTEL_TRACES_EXPORTER")
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{embedded.free_port()}"
        return env


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    # NATS and Redis of its own: the session's system would share the durable consumers and take
    # some of this booking's messages (handled there, untraced).
    servers = Servers(tmp_path_factory.mktemp("traced")).start()
    system = TracedSystem(servers, env=OTEL).start()
    yield system
    system.stop()
    servers.stop()


def spans_of(system: System, trace: str) -> list[dict]:
    found = []
    for name in system.names:
        for line in system.log_tail(name, 10_000_000).splitlines():
            if '"trace_id": "0x' not in line:
                continue
            try:
                span = json.loads(line)
            except ValueError:
                continue
            if span.get("context", {}).get("trace_id") == f"0x{trace}":
                found.append(span)
    return found


async def test_one_booking_is_one_trace_across_the_edge_every_service_and_nats(traced):
    client = Client(traced.gateway_addr)
    trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    metadata = [*client.auth(), (tracing.HEADER, f"00-{trace}-{caller_span}-01")]
    try:
        req = booking_pb2.CreateBookingRequest(
            patient=patient(), service_ids=["gen-consult"], appointment_date=future_date()
        )
        booking = (await client.bookings.CreateBooking(req, metadata=metadata, timeout=10)).booking
        settled = await client.settled(booking.id)
        assert settled.status == common_pb2.BOOKING_STATUS_CONFIRMED

        async def whole_trace():
            spans = spans_of(traced, trace)
            # every service's consumer span exported (a service's server span can come first)
            consuming = {
                s["resource"]["attributes"]["service.name"] for s in spans if s["kind"] == "SpanKind.CONSUMER"
            }
            return spans if TRACED <= consuming else None

        spans = await wait_for(whole_trace, 15, "spans from every service of the booking")
    finally:
        await client.close()
    ids = {s["context"]["span_id"] for s in spans}
    (create,) = [s for s in spans if s["name"] == "Booking/CreateBooking"]
    assert create["kind"] == "SpanKind.SERVER"
    # its parent is the edge's span: not the caller's (Envoy made one) and not a service's
    assert create["parent_id"] not in (f"0x{caller_span}", None) and create["parent_id"] not in ids
    # every other span hangs off another span of the same trace: linked through the NATS headers
    by_id = {s["context"]["span_id"]: s for s in spans}
    for span in spans:
        if span is create:
            continue
        assert span["parent_id"] in by_id, span["name"]
    consumers = [s for s in spans if s["kind"] == "SpanKind.CONSUMER"]
    assert {s["resource"]["attributes"]["service.name"] for s in consumers} >= TRACED
    for span in consumers:
        assert span["attributes"]["messaging.system"] == "nats"
        assert span["attributes"]["clinic.booking_id"] in (
            booking.id,
            span["attributes"]["clinic.booking_id"],
        )
    # a consumer in another service is the child of a span of the one that published to it
    crossing = [
        s for s in consumers
        if by_id[s["parent_id"]]["resource"]["attributes"]["service.name"]
        != s["resource"]["attributes"]["service.name"]
    ]  # fmt: skip
    assert crossing, "no span is parented across a NATS hop"
