"""Identity only from the edge: a call straight to booking_svc, skipping the gateway, gets nothing.

The services run as `make run` starts them: internal mutual TLS with the development CA. Each
attack forges an admin identity in the metadata and tries to store a booking; each is refused with
its exact code and leaves no Redis key and no JetStream message behind.
"""

from __future__ import annotations

import grpc
import pytest

from clinic.v1 import booking_pb2, booking_pb2_grpc
from clinic_common import principal, tls
from tests.footprint import Footprint
from tests.harness import future_date, patient, uid

FORGED_ADMIN = ((principal.SUB_KEY, "operator"), (principal.ROLE_KEY, principal.ADMIN))


def _request(marks: list[str]) -> booking_pb2.CreateBookingRequest:
    pid, rid = uid("forger"), uid("forged-req")
    marks += [pid, rid]
    return booking_pb2.CreateBookingRequest(
        patient=patient(pid), service_ids=["gen-consult"], appointment_date=future_date(), request_id=rid
    )


async def _create(channel: grpc.aio.Channel, req, metadata=FORGED_ADMIN) -> tuple[grpc.StatusCode, str]:
    try:
        await booking_pb2_grpc.BookingServiceStub(channel).CreateBooking(req, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture
async def footprint(redis, servers):
    return await Footprint(redis, servers.nats_url).start()


@pytest.fixture
def internal(system) -> tls.InternalTls:
    return tls.InternalTls.from_env(system.service_env("booking_svc"))


async def test_plaintext_call_with_forged_identity_is_refused(system, footprint):
    marks: list[str] = []
    async with grpc.aio.insecure_channel(system.addr_of("booking_svc")) as plain:
        code, _ = await _create(plain, _request(marks))
    assert code == grpc.StatusCode.UNAVAILABLE  # no TLS handshake, no call
    await footprint.assert_untouched(marks)


async def test_tls_without_a_client_certificate_is_refused(system, footprint, internal):
    marks: list[str] = []
    server_only = grpc.ssl_channel_credentials(internal.ca)
    async with grpc.aio.secure_channel(
        system.addr_of("booking_svc"), server_only, options=internal.channel_options()
    ) as anon:
        code, _ = await _create(anon, _request(marks))
    assert code == grpc.StatusCode.UNAVAILABLE  # the server requires a certificate in the handshake
    await footprint.assert_untouched(marks)


async def test_a_certificate_from_another_ca_is_refused(system, footprint, internal, tmp_path):
    marks: list[str] = []
    rogue = tls.InternalTls.from_env(tls.ensure_dev_pki(tmp_path))  # a CA of the attacker's own
    creds = grpc.ssl_channel_credentials(internal.ca, private_key=rogue.key, certificate_chain=rogue.cert)
    async with grpc.aio.secure_channel(
        system.addr_of("booking_svc"), creds, options=internal.channel_options()
    ) as channel:
        code, _ = await _create(channel, _request(marks))
    assert code == grpc.StatusCode.UNAVAILABLE
    await footprint.assert_untouched(marks)


async def test_a_verified_peer_without_identity_is_unauthenticated_not_admin(system, footprint, internal):
    """The hole that was: a call with no identity metadata acted as an admin."""
    marks: list[str] = []
    async with grpc.aio.secure_channel(
        system.addr_of("booking_svc"), internal.channel_credentials(), options=internal.channel_options()
    ) as channel:
        code, details = await _create(channel, _request(marks), metadata=())
        assert (code, details) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "no caller identity (x-clinic-sub, x-clinic-role): call through the gateway",
        )
        # The same channel with an identity works: the refusal above is about the identity only.
        ok, _ = await _create(channel, _request([]), metadata=FORGED_ADMIN)
        assert ok == grpc.StatusCode.OK
    await footprint.assert_untouched(marks)


async def test_a_plaintext_service_believes_no_one_unless_started_for_development(tmp_path, servers):
    """Without internal TLS a service does not start; with CLINIC_AUTH=none it warns and starts."""
    from tests.harness import System

    env = {v: "" for v in tls.VARS}
    refused = System(servers, env=env, services=("booking_svc",))
    with pytest.raises(RuntimeError, match="exited with 2") as caught:
        refused.start()
    assert "configuration error: internal services need mutual TLS" in str(caught.value)
    dev = System(servers, env={**env, "CLINIC_AUTH": "none"}, services=("booking_svc",))
    dev.start()
    try:
        assert "internal.plaintext" in dev.log_tail("booking_svc")
        marks: list[str] = []
        async with grpc.aio.insecure_channel(dev.addr_of("booking_svc")) as plain:
            code, _ = await _create(plain, _request(marks), metadata=())
        assert code == grpc.StatusCode.UNAUTHENTICATED  # even there, no identity is no access
    finally:
        dev.stop()


def test_the_container_health_probe_dials_with_the_internal_certificate(system):
    import subprocess
    import sys

    from tests.harness import ROOT

    def probe(*args: str) -> int:
        cmd = [sys.executable, "-m", "clinic_tools.probe", system.addr_of("booking_svc"), *args]
        return subprocess.run(cmd, env=system.service_env("booking_svc"), cwd=ROOT, timeout=30).returncode

    assert probe("--internal") == 0
    assert probe() == 1  # plaintext: refused
