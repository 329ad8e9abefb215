"""Internal services can require mutual TLS from the gateway; the gateway serves TLS to clients."""

from __future__ import annotations

import subprocess

import grpc
import pytest

from clinic.v1 import booking_pb2, booking_pb2_grpc
from tests.harness import Client, Servers, System, future_date, patient


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, an internal certificate for 'clinic-internal' and a public one for 'localhost'."""
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=clinic test CA",
        cwd=d,
    )
    for name in ("clinic-internal", "localhost"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{name}\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d


async def test_internal_mutual_tls_and_public_tls(pki, tmp_path):
    servers = Servers(tmp_path).start()
    env = {
        "CLINIC_INTERNAL_TLS_CERT": str(pki / "clinic-internal.pem"),
        "CLINIC_INTERNAL_TLS_KEY": str(pki / "clinic-internal.key"),
        "CLINIC_INTERNAL_TLS_CA": str(pki / "ca.pem"),
        "CLINIC_TLS_CERT": str(pki / "localhost.pem"),
        "CLINIC_TLS_KEY": str(pki / "localhost.key"),
    }
    system = System(servers, env=env)
    system.start()
    try:
        ca = (pki / "ca.pem").read_bytes()
        port = system.instance_ports["gateway"]
        async with grpc.aio.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(ca)) as channel:
            stub = booking_pb2_grpc.BookingServiceStub(channel)
            req = booking_pb2.CreateBookingRequest(
                patient=patient(), service_ids=["gen-consult"], appointment_date=future_date()
            )
            reply = await stub.CreateBooking(req, metadata=Client.auth(), timeout=30, wait_for_ready=True)
            booking = reply.booking
            assert booking.id
        # Plaintext, or TLS without a client certificate: an internal service refuses.
        async with grpc.aio.insecure_channel(system.addr_of("booking_svc")) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await booking_pb2_grpc.BookingServiceStub(plain).GetBooking(
                    booking_pb2.GetBookingRequest(booking_id=booking.id), timeout=3
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        options = [("grpc.ssl_target_name_override", "clinic-internal")]
        server_only = grpc.ssl_channel_credentials(ca)
        async with grpc.aio.secure_channel(
            system.addr_of("booking_svc"), server_only, options=options
        ) as anon:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await booking_pb2_grpc.BookingServiceStub(anon).GetBooking(
                    booking_pb2.GetBookingRequest(booking_id=booking.id), timeout=3
                )
            # Refused in the handshake (the server requires a client certificate): no call is made.
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        system.stop()
        servers.stop()
