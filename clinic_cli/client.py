"""How the CLI reaches the gateway: address, token, stubs, and one-line errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from clinic.v1 import (
    admin_pb2_grpc,
    booking_pb2_grpc,
    doctor_pb2_grpc,
    notification_pb2_grpc,
    patient_pb2_grpc,
)
from clinic_common.errors import bad_request_violations

DEFAULT_ADDR = "127.0.0.1:50051"


class CliError(Exception):
    """Printed as one line (`clinic: ...`), exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def resolve_token(explicit: str | None) -> str | None:
    """--token, else CLINIC_TOKEN, else an admin token minted from the local secret (development)."""
    if explicit or os.environ.get("CLINIC_TOKEN"):
        return explicit or os.environ["CLINIC_TOKEN"]
    secret = os.environ.get("CLINIC_JWT_SECRET")
    path = Path(os.environ.get("CLINIC_DATA_DIR", "./var")) / "dev-jwt-secret"
    if not secret and path.exists():
        secret = path.read_text().strip()
    if not secret:
        return None
    from gateway.auth import mint

    return mint(secret, "operator", "admin", ttl_s=3600)


@dataclass
class Api:
    addr: str
    token: str | None

    async def __aenter__(self) -> Api:
        self.channel = grpc.aio.insecure_channel(self.addr)
        self.bookings = booking_pb2_grpc.BookingServiceStub(self.channel)
        self.notifications = notification_pb2_grpc.NotificationServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.patients = patient_pb2_grpc.PatientServiceStub(self.channel)
        self.doctors = doctor_pb2_grpc.DoctorServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.channel.close()

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


# What grpc-core says when the connection itself fails (no server answered). A server that answers
# UNAVAILABLE says which of its dependencies is down ("booking_svc unavailable: ...", "Redis ...").
_NO_CONNECTION = (
    "failed to connect to all addresses",
    "connections to all backends failing",
    "dns resolution failed",
    "connection refused",
    "socket closed",
    "empty address list",
)


def describe(err: grpc.aio.AioRpcError, addr: str) -> CliError:
    details = err.details() or ""
    if err.code() == grpc.StatusCode.UNAVAILABLE and details.lower().startswith(_NO_CONNECTION):
        return CliError(f"cannot reach the gateway at {addr} (is 'make run' running?): {details}", 2)
    if err.code() == grpc.StatusCode.UNAVAILABLE:
        return CliError(f"UNAVAILABLE: {details}", 2)
    violations = bad_request_violations(err) if err.code() == grpc.StatusCode.INVALID_ARGUMENT else []
    if violations:
        lines = "".join(f"\n  {field}: {description}" for field, description in violations)
        return CliError(f"INVALID_ARGUMENT: {details}{lines}")
    return CliError(f"{err.code().name}: {details}")
