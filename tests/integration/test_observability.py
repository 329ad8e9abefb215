"""/metrics answers on every service, and one trace id follows a booking through all of them."""

from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from clinic.v1 import common_pb2 as c
from tests.harness import Client, Servers, System, birthday_patient, future_date, patient, wait_for

TRACE = "0af7651916cd43dd8448eb211c80319c"


def scrape(system, name: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{system.metrics_ports[name]}/metrics", timeout=5) as r:
        return r.read().decode()


def figures(system, name: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value of every clinic_* sample a service exports."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scrape(system, name))
        for sample in family.samples
        if sample.name.startswith("clinic_")
    }


def families(found: dict) -> set[str]:
    return {name for name, _ in found}


def envoy_calls(text: str, method: str, code: int = 0) -> float:
    """What Envoy counted for one method and gRPC status (envoy_cluster_grpc_<code>{grpc_method=...})."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (f"envoy_cluster_grpc_{code}", f"envoy_cluster_grpc_{code}_total")
        and sample.labels.get("grpc_method") == method
    )


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_each_service_exports_only_its_figures_and_they_match_the_system(tmp_path):
    """After three bookings (one discounted, one plain, one blocked) on a fresh system, each
    service's /metrics shows exactly what happened, and nothing it does not update."""
    own = Servers(tmp_path).start()
    fresh = System(own, env={"DAILY_DISCOUNT_QUOTA": "20"})
    client = None
    try:
        fresh.start()
        client = Client(fresh.gateway_addr)
        people = [birthday_patient(), patient(), patient("fail_test_user")]
        made = [await client.create(p, ["gen-consult"], appointment_date=future_date()) for p in people]
        for booking in made:
            assert await client.watch(booking.id)  # a server stream through the gateway, to its end
        settled = [await client.settled(b.id) for b in made]
        assert [b.status for b in settled] == [
            c.BOOKING_STATUS_CONFIRMED,
            c.BOOKING_STATUS_CONFIRMED,
            c.BOOKING_STATUS_REJECTED,
        ]
        quota = await client.quota()
        assert quota.used == 1

        booking = figures(fresh, "booking_svc")
        assert value(booking, "clinic_bookings_total", status="CONFIRMED", reason="UNSPECIFIED") == 2
        assert value(booking, "clinic_bookings_total", status="REJECTED", reason="PATIENT_BLOCKED") == 1
        assert value(booking, "clinic_saga_duration_seconds_count") == 3
        assert value(booking, "clinic_grpc_requests_total", method="CreateBooking", code="OK") == 3

        async def quota_gauge() -> dict | None:
            found = figures(fresh, "discount_svc")
            return found if value(found, "clinic_quota_used") == quota.used else None

        discount = await wait_for(quota_gauge, what="discount_svc's clinic_quota_used to equal GetQuota.used")
        assert value(discount, "clinic_quota_limit") == 20

        gateway = figures(fresh, "gateway")  # Envoy: its own envoy_* families, no clinic_* ones
        edge = scrape(fresh, "gateway")
        assert envoy_calls(edge, "clinic.v1.NotificationService.WatchBooking") == 3  # streams counted
        assert envoy_calls(edge, "clinic.v1.BookingService.CreateBooking") == 3

        notification = figures(fresh, "notification_svc")
        assert (
            value(notification, "clinic_consumer_messages_total", consumer="notification-svc", result="ack")
            >= 2
        )

        saga_only = {
            "clinic_bookings_total",
            "clinic_saga_duration_seconds_count",
            "clinic_bookings_shed_total",
        }
        quota_only = {"clinic_quota_used", "clinic_quota_limit"}
        consumers = {"clinic_consumer_messages_total", "clinic_consumer_pending"}
        assert not families(discount) & saga_only
        assert not families(notification) & (saga_only | quota_only)
        assert not families(gateway) & (saga_only | quota_only | consumers)
        assert not families(booking) & quota_only
    finally:
        if client is not None:
            await client.close()
        fresh.stop()
        own.stop()


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
    assert {"BOOKING_EVENTS", "SAGA", "NOTIFICATIONS", "REMINDERS", "DEAD_LETTERS"} <= set(streams)
    assert streams["BOOKING_EVENTS"]["config"]["subjects"] == ["booking.events.>"]
    assert streams["SAGA"]["config"]["description"].startswith("Saga commands")
    consumers = {c["name"] for c in streams["SAGA"]["consumer_detail"]}
    assert {"booking-svc", "discount-svc", "schedule-svc"} <= consumers
    # notification_svc reads the events themselves, after the saga; reminders are message schedules
    assert {c["name"] for c in streams["BOOKING_EVENTS"]["consumer_detail"]} == {"notification-svc"}
    assert {c["name"] for c in streams["NOTIFICATIONS"]["consumer_detail"]} == {"notification-svc-send"}
    assert streams["REMINDERS"]["config"]["allow_msg_schedules"] is True
    with urllib.request.urlopen(f"http://127.0.0.1:{servers.monitor_port}/healthz", timeout=5) as r:
        assert json.loads(r.read())["status"] == "ok"
