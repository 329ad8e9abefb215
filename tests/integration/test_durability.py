"""Restarts and timeouts, each on a system of its own (these tests stop servers and services)."""

from __future__ import annotations

import contextlib
import time

import grpc
import nats
import pytest

from clinic.v1 import booking_pb2, notification_pb2
from clinic.v1 import common_pb2 as c
from clinic_common import subjects
from discount_svc.store import used_key
from tests.harness import (
    Client,
    Servers,
    System,
    birthday_patient,
    future_date,
    patient,
    redis_client,
    today_ist,
    wait_for,
)


@pytest.fixture(scope="module")
def own_servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("own")).start()
    yield servers
    servers.stop()


@contextlib.asynccontextmanager
async def running(servers: Servers, only: tuple[str, ...] | None = None, **kw):
    """(system, client): a system of its own over `servers` (`only` some services), stopped after."""
    system = System(servers, **kw)
    system.start(only)
    client = Client(system.gateway_addr)
    try:
        yield system, client
    finally:
        await client.close()
        system.stop()


async def booked_again(client: Client, what: str) -> c.Booking:
    """A booking accepted once the service is back (UNAVAILABLE until then), settled CONFIRMED."""

    async def works():
        try:
            return await client.create(patient(), ["gen-consult"], appointment_date=future_date())
        except grpc.aio.AioRpcError:
            return None

    booking = await wait_for(works, timeout_s=30, what=what)
    assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
    return booking


async def test_bookings_and_quota_survive_a_restart_of_every_process_and_server(own_servers):
    async with running(own_servers) as (system, client):
        confirmed = await client.create(birthday_patient(), ["gen-consult"], appointment_date=future_date())
        confirmed = await client.settled(confirmed.id)
        quota_before = await client.quota()
        assert quota_before.used == 1
        pending_saga = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    own_servers.stop()  # SIGTERM: the AOF and the JetStream store are flushed

    own_servers.start()
    async with running(own_servers, ports=system.ports) as (_, client):
        again = await client.get(confirmed.id)
        assert again == confirmed
        assert (await client.quota()).used == quota_before.used
        assert (await client.settled(pending_saga.id)).status == c.BOOKING_STATUS_CONFIRMED
        fresh = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
        assert (await client.settled(fresh.id)).status == c.BOOKING_STATUS_CONFIRMED


async def test_bookings_survive_sigkill_of_every_process_and_server(own_servers):
    system = System(own_servers).start()
    client = Client(system.gateway_addr)
    try:
        booking = await client.settled(
            (await client.create(patient(), ["gen-consult"], appointment_date=future_date())).id
        )
    finally:
        await client.close()
    for module in list(system.procs):
        system.kill(module)
    own_servers.nats.kill()
    own_servers.redis.kill()

    own_servers.start()
    async with running(own_servers, ports=system.ports) as (_, client):
        assert await client.get(booking.id) == booking


async def test_nats_down_means_unavailable_and_nothing_written(own_servers):
    async with running(own_servers) as (_, client):
        own_servers.nats.stop()
        who = patient()

        async def refused():
            try:
                await client.create(who, ["gen-consult"], appointment_date=future_date())
            except grpc.aio.AioRpcError as err:
                return err if err.code() == grpc.StatusCode.UNAVAILABLE else None
            return None

        err = await wait_for(refused, what="CreateBooking to answer UNAVAILABLE")
        assert "NATS" in err.details()
        own_servers.start_nats()

        # The services reconnect by themselves; the next booking goes through.
        await booked_again(client, "bookings to work again after NATS is back")
        listed = await client.bookings.ListBookings(
            booking_pb2.ListBookingsRequest(patient_id=who.id), metadata=client.auth()
        )
        assert list(listed.bookings) == []


async def test_a_booking_stuck_pending_times_out_and_a_late_grant_is_refused(own_servers):
    """discount_svc is down: the booking times out; when it comes back it must not take a unit."""
    only = ("schedule_svc", "booking_svc", "notification_svc", "gateway")
    async with running(own_servers, only, env={"BOOKING_TIMEOUT_SECONDS": "1"}) as (system, client):
        quota = await redis_client(own_servers)
        used_before = int(await quota.get(used_key(today_ist().isoformat())) or 0)  # discount_svc is down
        await quota.aclose()
        booking = await client.create(birthday_patient(), ["ultrasound"], appointment_date=future_date())
        done = await client.settled(booking.id)
        assert done.status == c.BOOKING_STATUS_REJECTED
        assert done.rejection_reason == c.REJECTION_REASON_TIMED_OUT
        system.start(only=("discount_svc",))
        nc = await nats.connect(own_servers.nats_url)
        try:
            js = nc.jetstream()

            async def discount_consumer_drained():
                info = await js.consumer_info(subjects.SAGA_STREAM, subjects.DISCOUNT_CONSUMER)
                return info.num_pending == 0 and info.num_ack_pending == 0

            await wait_for(discount_consumer_drained, what="discount_svc to process the late request")
        finally:
            await nc.close()
        assert (await client.quota()).used == used_before
        late = await client.create(birthday_patient(), ["ultrasound"], appointment_date=future_date())
        assert (await client.settled(late.id)).discount.outcome == c.DISCOUNT_OUTCOME_APPLIED
        assert (await client.quota()).used == used_before + 1  # only the live booking holds a unit
        assert (await client.get(booking.id)).discount.outcome == c.DISCOUNT_OUTCOME_UNSPECIFIED


async def test_redis_down_means_unavailable_naming_redis_then_recovery(own_servers):
    async with running(own_servers) as (_, client):
        own_servers.redis.stop()
        try:
            await client.create(patient(), ["gen-consult"], appointment_date=future_date())
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            assert "Redis" in err.details()
        else:
            raise AssertionError("CreateBooking must fail while Redis is down")
        own_servers.start_redis()
        await booked_again(client, "bookings to work again after Redis is back")


async def test_sigterm_ends_watch_streams_cleanly_and_exits_promptly(own_servers):
    async with running(own_servers) as (system, client):
        who = patient()
        stream = client.notifications.WatchPatient(
            notification_pb2.WatchPatientRequest(patient_id=who.id), metadata=client.auth()
        )
        await stream.initial_metadata()
        started = time.monotonic()
        system.stop(("notification_svc",))
        assert [item async for item in stream] == []
        assert await stream.code() == grpc.StatusCode.OK  # ended by the server, not broken
        assert system.procs["notification_svc"].returncode == 0
        assert time.monotonic() - started < 10
        for module in ("booking_svc", "discount_svc", "gateway"):
            system.stop((module,))
            assert system.procs[module].returncode == 0, system.log_tail(module)
