"""/metrics answers on every service, and one trace id follows a booking through all of them."""

from __future__ import annotations

import json
import urllib.request

from tests.harness import future_date, patient

TRACE = "0af7651916cd43dd8448eb211c80319c"


def scrape(system, name: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{system.metrics_ports[name]}/metrics", timeout=5) as r:
        return r.read().decode()


async def test_every_service_serves_metrics_with_the_saga_figures(client, system):
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    booking_metrics = scrape(system, "booking_svc")
    assert 'clinic_bookings_total{reason="UNSPECIFIED",status="CONFIRMED"}' in booking_metrics
    assert "clinic_saga_duration_seconds_bucket" in booking_metrics
    assert 'clinic_grpc_requests_total{code="OK",method="CreateBooking"}' in booking_metrics
    assert 'clinic_consumer_messages_total{consumer="booking-svc",result="ack"}' in booking_metrics
    assert "clinic_quota_limit 20.0" in scrape(system, "discount_svc")
    assert 'consumer="notification-svc"' in scrape(system, "notification_svc")
    gateway = [
        line for line in scrape(system, "gateway").splitlines() if line.startswith("envoy_cluster_grpc_0{")
    ]
    created = [line for line in gateway if 'grpc_method="clinic.v1.BookingService.CreateBooking"' in line]
    assert created and 'envoy_cluster_name="booking_svc"' in created[0] and float(created[0].split()[-1]) >= 1


async def test_one_trace_id_follows_a_booking_across_every_service(client, system):
    from clinic.v1 import booking_pb2

    md = [*client.auth(), ("traceparent", f"00-{TRACE}-b7ad6b7169203331-01")]
    req = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], appointment_date=future_date()
    )
    booking = (await client.bookings.CreateBooking(req, metadata=md)).booking
    await client.settled(booking.id)
    for module in ("booking_svc", "discount_svc", "notification_svc"):
        lines = [
            json.loads(line) for line in system.log_tail(module, 5_000_000).splitlines() if booking.id in line
        ]
        assert lines, f"{module} logged nothing about {booking.id}"
        assert {line.get("trace_id") for line in lines} == {TRACE}, module


def test_nats_monitoring_port_shows_the_documented_streams_and_consumers(system, servers):
    with urllib.request.urlopen(
        f"http://127.0.0.1:{servers.monitor_port}/jsz?streams=1&consumers=1&config=1", timeout=5
    ) as r:
        jsz = json.loads(r.read())
    streams = {s["name"]: s for a in jsz["account_details"] for s in a["stream_detail"]}
    assert {"BOOKING_EVENTS", "SAGA", "DEAD_LETTERS"} <= set(streams)
    assert streams["BOOKING_EVENTS"]["config"]["subjects"] == ["booking.events.>"]
    assert streams["SAGA"]["config"]["description"].startswith("Saga commands")
    consumers = {c["name"] for c in streams["SAGA"]["consumer_detail"]}
    assert {"booking-svc", "discount-svc", "notification-svc"} <= consumers
    with urllib.request.urlopen(f"http://127.0.0.1:{servers.monitor_port}/healthz", timeout=5) as r:
        assert json.loads(r.read())["status"] == "ok"
