"""The quota invariant check: it finds a drifted counter and a leaked unit, and repairs both."""

from __future__ import annotations

from clinic.v1 import admin_pb2
from clinic.v1 import common_pb2 as c
from discount_svc.store import grant_key, holders_key, used_key
from tests.harness import birthday_patient, future_date, patient, today_ist


async def verify(client, repair: bool) -> admin_pb2.VerifyQuotaResponse:
    return await client.admin_api.VerifyQuota(
        admin_pb2.VerifyQuotaRequest(repair=repair), metadata=client.auth()
    )


async def test_verify_reports_and_repairs_a_drifted_counter_and_a_leaked_unit(client, redis):
    day = today_ist().isoformat()
    await redis.set(used_key(day), 0)
    await redis.delete(holders_key(day))
    held = await client.settled(
        (await client.create(birthday_patient(), ["gen-consult"], appointment_date=future_date())).id
    )
    assert held.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED
    assert (await verify(client, repair=False)).consistent

    # A rejected booking that (through some lost message) still holds a unit, and a drifted counter.
    rejected = await client.settled(
        (await client.create(patient("fail_test_user"), ["gen-consult"], appointment_date=future_date())).id
    )
    await redis.set(grant_key(day, rejected.id), "applied")
    await redis.sadd(holders_key(day), rejected.id)
    await redis.incrby(used_key(day), 5)

    report = await verify(client, repair=False)
    assert not report.consistent and not report.repaired
    assert report.used_before == 6 and report.bookings_applied == 1
    assert any(rejected.id in p for p in report.problems)
    assert report.quota.used == 6  # a check alone changes nothing

    repaired = await verify(client, repair=True)
    assert repaired.repaired
    assert repaired.quota.used == 1
    assert (await verify(client, repair=False)).consistent
    assert await redis.get(grant_key(day, rejected.id)) == b"released"


async def test_verify_is_admin_only(client):
    import grpc

    try:
        await client.admin_api.VerifyQuota(
            admin_pb2.VerifyQuotaRequest(), metadata=client.auth("p1", "patient")
        )
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    else:
        raise AssertionError("patients must not verify the quota")
