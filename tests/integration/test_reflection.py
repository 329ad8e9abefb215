"""grpcurl resolves every kind of symbol through the gateway's reflection, with no proto files."""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import ROOT

GRPCURL = ROOT / ".venv" / "bin" / "grpcurl"

# symbol -> a line grpcurl's describe must print for it
SYMBOLS = {
    "clinic.v1.BookingService": "service BookingService {",
    "clinic.v1.BookingService.CreateBooking": "rpc CreateBooking ( .clinic.v1.CreateBookingRequest )",
    "clinic.v1.NotificationService.WatchBooking": "returns ( stream .clinic.v1.WatchBookingResponse )",
    "clinic.v1.AdminService.GetQuota": "rpc GetQuota ( .clinic.v1.GetQuotaRequest )",
    "clinic.v1.CreateBookingRequest": "message CreateBookingRequest {",
    "clinic.v1.Gender": "enum Gender {",
    "clinic.v1.Gender.GENDER_FEMALE": "GENDER_FEMALE = 1;",
    "clinic.v1.Patient.date_of_birth": "string date_of_birth = 4;",
    "grpc.health.v1.Health.Check": "rpc Check ( .grpc.health.v1.HealthCheckRequest )",
}


def grpcurl(addr: str, *args: str) -> str:
    proc = subprocess.run(
        [str(GRPCURL), "-plaintext", addr, *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("symbol", list(SYMBOLS))
def test_describe_resolves_the_symbol(system, symbol):
    out = grpcurl(system.gateway_addr, "describe", symbol)
    assert SYMBOLS[symbol] in out, out


def test_list_shows_the_public_api_and_not_the_saga(system):
    services = grpcurl(system.gateway_addr, "list").split()
    public = {"clinic.v1.BookingService", "clinic.v1.NotificationService", "clinic.v1.AdminService"}
    assert public <= set(services)
    assert "grpc.health.v1.Health" in services
    assert not [s for s in services if "saga" in s.lower()]
    methods = grpcurl(system.gateway_addr, "list", "clinic.v1.BookingService").split()
    assert "clinic.v1.BookingService.CreateBooking" in methods


def test_an_unknown_symbol_is_not_found(system):
    proc = subprocess.run(
        [str(GRPCURL), "-plaintext", system.gateway_addr, "describe", "clinic.v1.NoSuchThing"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "Symbol not found: clinic.v1.NoSuchThing" in proc.stderr


@pytest.mark.parametrize("service", ["booking_svc", "discount_svc", "notification_svc"])
def test_every_internal_service_answers_for_the_whole_api_over_mutual_tls(system, service):
    """An edge that routes reflection to one upstream (Envoy cannot merge several) gets every symbol."""
    env = system.service_env(service)
    mtls = [
        *("-cacert", env["CLINIC_INTERNAL_TLS_CA"], "-cert", env["CLINIC_INTERNAL_TLS_CERT"]),
        *("-key", env["CLINIC_INTERNAL_TLS_KEY"], "-servername", env["CLINIC_INTERNAL_TLS_NAME"]),
    ]
    addr = system.addr_of(service)
    for symbol in ("clinic.v1.BookingService.CreateBooking", "clinic.v1.AdminService.GetQuota"):
        proc = subprocess.run(
            [str(GRPCURL), *mtls, addr, "describe", symbol], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0 and SYMBOLS[symbol] in proc.stdout, proc.stderr
