"""Issue 11, the check-in queue: positions under concurrency, the live queue stream, the state
machine and every refusal, through the gateway against the real services."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request

import grpc
import nats
import pytest
from nats.js.errors import NotFoundError

from clinic.v1 import common_pb2 as c
from clinic.v1 import frontdesk_pb2 as f
from clinic.v1 import frontdesk_pb2_grpc, notification_pb2
from clinic_common import subjects
from frontdesk_svc.domain import QueueId
from frontdesk_svc.store import QueueStore
from tests.harness import Client, future_date, patient, today_ist, uid, wait_for

S = f.VisitState
SERVICE = "blood-panel"  # 650.00: never R1-eligible, so these bookings never touch the quota


@pytest.fixture(scope="module")
async def desk(client: Client):
    return frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)


def staff() -> list[tuple[str, str]]:
    return Client.auth("front-desk", "staff")


async def confirmed_today(client: Client, doctor_id: str, who: c.Patient | None = None) -> c.Booking:
    made = await client.create(who or patient(), [SERVICE], doctor_id=doctor_id)
    booking = await client.settled(made.id, notified=False)
    assert booking.status == c.BOOKING_STATUS_CONFIRMED, booking
    assert booking.appointment_date == today_ist().isoformat()
    return booking


async def doctor_today(client: Client, capacity: int = 30) -> str:
    return (await client.doctor(service_ids=(SERVICE,), daily_capacity=capacity)).id


async def check_in(desk, booking_id: str, md=None) -> f.Visit:
    response = await desk.CheckIn(f.CheckInRequest(booking_id=booking_id), metadata=md or staff(), timeout=10)
    return response.visit


async def queue(desk, doctor_id: str) -> f.GetQueueResponse:
    return await desk.GetQueue(f.GetQueueRequest(doctor_id=doctor_id), metadata=staff(), timeout=10)


async def refused(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def stored_nothing_for(redis, servers, booking_id: str) -> None:
    """No index entry, no visit in any queue, no change in VISITS for this booking."""
    assert await redis.get(f"frontdesk:visit:{booking_id}") is None
    nc = await nats.connect(servers.nats_url)
    try:
        with pytest.raises(NotFoundError):
            await nc.jetstream().get_msg(
                subjects.VISITS_STREAM, seq=1, subject=f"visits.*.*.{booking_id}", next=True
            )
    finally:
        await nc.close()


async def test_twenty_concurrent_check_ins_get_positions_one_to_twenty(client, desk):
    doctor_id = await doctor_today(client)
    bookings = await asyncio.gather(*(confirmed_today(client, doctor_id) for _ in range(20)))
    visits = await asyncio.gather(*(check_in(desk, b.id) for b in bookings))
    assert sorted(v.position for v in visits) == list(range(1, 21))
    assert {v.state for v in visits} == {S.VISIT_STATE_WAITING}
    assert {v.booking_id for v in visits} == {b.id for b in bookings}
    shown = await queue(desk, doctor_id)
    assert [v.position for v in shown.visits] == list(range(1, 21))
    assert shown.sequence == 20
    # Each visit carries its booking's patient, doctor, date and token, and when it checked in.
    by_booking = {b.id: b for b in bookings}
    for v in shown.visits:
        b = by_booking[v.booking_id]
        assert (v.patient_id, v.doctor_id, v.date, v.token) == (
            b.patient.id,
            doctor_id,
            today_ist().isoformat(),
            b.token,
        )
        assert v.checked_in_at.seconds > 0


async def _collect(desk, doctor_id: str, until: int, after: int = 0) -> list[f.WatchQueueResponse]:
    """WatchQueue until the snapshot plus the changes account for `until` changes."""
    items = []
    call = desk.WatchQueue(
        f.WatchQueueRequest(doctor_id=doctor_id, after_sequence=after), metadata=staff(), timeout=30
    )
    try:
        async for item in call:
            items.append(item)
            if item.sequence >= until:
                break
    finally:
        call.cancel()
    return items


async def test_watchers_started_mid_burst_see_every_change_exactly_once_in_order(client, desk):
    doctor_id = await doctor_today(client, capacity=40)
    bookings = await asyncio.gather(*(confirmed_today(client, doctor_id) for _ in range(30)))
    for b in bookings[:5]:
        await check_in(desk, b.id)
    # Watchers start one after another while 25 more check in concurrently, so some of them
    # read their snapshot while changes are in flight.
    burst = asyncio.gather(*(check_in(desk, b.id) for b in bookings[5:]))
    watchers = []
    while not burst.done():
        watchers.append(asyncio.create_task(_collect(desk, doctor_id, until=30)))
        await asyncio.sleep(0.005)
    await burst
    watchers.append(asyncio.create_task(_collect(desk, doctor_id, until=30)))
    assert len(watchers) >= 3
    snapshots = []
    for items in await asyncio.wait_for(asyncio.gather(*watchers), 30):
        snapshot, changes = items[0], items[1:]
        assert snapshot.WhichOneof("item") == "snapshot"
        assert all(i.WhichOneof("item") == "change" for i in changes)
        start = snapshot.snapshot.sequence
        snapshots.append(start)
        assert [i.change.sequence for i in changes] == list(range(start + 1, 31))
        positions = [v.position for v in snapshot.snapshot.visits] + [
            i.change.visit.position for i in changes
        ]
        assert sorted(positions) == list(range(1, 31))  # every check-in once: none missed, none twice
        assert {i.change.kind for i in changes} <= {f.QueueChange.KIND_CHECKED_IN}
    assert min(snapshots) < 30  # at least one watcher really started mid-burst

    # A client that lost its stream resumes after the last sequence it saw, replayed from VISITS.
    called = await desk.CallNext(f.CallNextRequest(doctor_id=doctor_id), metadata=staff(), timeout=10)
    resumed = await _collect(desk, doctor_id, until=31, after=12)
    assert [i.change.sequence for i in resumed] == list(range(13, 32))
    assert resumed[-1].change.kind == f.QueueChange.KIND_CALLED
    assert resumed[-1].change.visit.booking_id == called.visit.booking_id


async def test_state_machine_call_complete_no_show_and_nobody_waiting(client, desk):
    doctor_id = await doctor_today(client)
    one, two, three = [await confirmed_today(client, doctor_id) for _ in range(3)]
    for b in (one, two, three):
        await check_in(desk, b.id)
    call = f.CallNextRequest(doctor_id=doctor_id)
    patient_md = Client.auth(one.patient.id, "patient")
    assert await refused(desk.CallNext(call, metadata=patient_md)) == grpc.StatusCode.PERMISSION_DENIED
    done_req = f.CompleteVisitRequest(booking_id=one.id)
    assert (
        await refused(desk.CompleteVisit(done_req, metadata=patient_md)) == grpc.StatusCode.PERMISSION_DENIED
    )
    # Completing a visit still waiting is refused: only IN_CONSULTATION becomes DONE.
    assert (
        await refused(desk.CompleteVisit(done_req, metadata=staff())) == grpc.StatusCode.FAILED_PRECONDITION
    )

    first = (await desk.CallNext(call, metadata=staff())).visit
    assert (first.booking_id, first.position, first.state) == (one.id, 1, S.VISIT_STATE_IN_CONSULTATION)
    assert first.called_at.seconds > 0
    done = (await desk.CompleteVisit(done_req, metadata=staff())).visit
    assert (done.state, done.position) == (S.VISIT_STATE_DONE, 1)
    assert done.done_at.seconds > 0
    again = desk.CompleteVisit(done_req, metadata=staff())
    assert await refused(again) == grpc.StatusCode.FAILED_PRECONDITION

    skipped = (await desk.MarkNoShow(f.MarkNoShowRequest(booking_id=two.id), metadata=staff())).visit
    assert skipped.state == S.VISIT_STATE_NO_SHOW  # waiting, never called: skipped by CallNext
    second = (await desk.CallNext(call, metadata=staff())).visit
    assert (second.booking_id, second.position) == (three.id, 3)
    assert await refused(desk.CallNext(call, metadata=staff())) == grpc.StatusCode.FAILED_PRECONDITION
    no_show_again = desk.MarkNoShow(f.MarkNoShowRequest(booking_id=two.id), metadata=staff())
    assert await refused(no_show_again) == grpc.StatusCode.FAILED_PRECONDITION
    # Called in, never came: a no-show too.
    absent = (await desk.MarkNoShow(f.MarkNoShowRequest(booking_id=three.id), metadata=staff())).visit
    assert absent.state == S.VISIT_STATE_NO_SHOW

    shown = await queue(desk, doctor_id)
    assert [(v.position, v.state) for v in shown.visits] == [
        (1, S.VISIT_STATE_DONE),
        (2, S.VISIT_STATE_NO_SHOW),
        (3, S.VISIT_STATE_NO_SHOW),
    ]
    assert shown.sequence == 3 + 5
    unknown = f.CompleteVisitRequest(booking_id=uid("nobooking"))
    assert await refused(desk.CompleteVisit(unknown, metadata=staff())) == grpc.StatusCode.NOT_FOUND
    empty = f.CallNextRequest(doctor_id=await doctor_today(client))
    assert await refused(desk.CallNext(empty, metadata=staff())) == grpc.StatusCode.FAILED_PRECONDITION


async def test_check_in_refusals_store_nothing(client, desk, redis, servers):
    doctor_id = await doctor_today(client)
    # Unknown booking.
    missing = uid("nobooking")
    assert await refused(desk.CheckIn(f.CheckInRequest(booking_id=missing), metadata=staff())) == (
        grpc.StatusCode.NOT_FOUND
    )
    # Another patient's booking; the patient's own is fine.
    mine = await confirmed_today(client, doctor_id)
    other_md = Client.auth(uid("p"), "patient")
    assert await refused(desk.CheckIn(f.CheckInRequest(booking_id=mine.id), metadata=other_md)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    await stored_nothing_for(redis, servers, mine.id)
    # A future date: the booking is for another day.
    later = await client.settled(
        (await client.create(patient(), [SERVICE], doctor_id=doctor_id, appointment_date=future_date())).id,
        notified=False,
    )
    assert later.status == c.BOOKING_STATUS_CONFIRMED
    assert await refused(desk.CheckIn(f.CheckInRequest(booking_id=later.id), metadata=staff())) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    await stored_nothing_for(redis, servers, later.id)
    # Not CONFIRMED: a cancelled booking for today.
    gone = await confirmed_today(client, doctor_id)
    await client.cancel(gone.id, "changed my mind")
    assert await refused(desk.CheckIn(f.CheckInRequest(booking_id=gone.id), metadata=staff())) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    await stored_nothing_for(redis, servers, gone.id)

    own = await check_in(desk, mine.id, Client.auth(mine.patient.id, "patient"))
    assert (own.position, own.patient_id) == (1, mine.patient.id)
    # Twice: ALREADY_EXISTS, and the queue still holds one visit with one change.
    assert await refused(desk.CheckIn(f.CheckInRequest(booking_id=mine.id), metadata=staff())) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    shown = await queue(desk, doctor_id)
    assert ([v.booking_id for v in shown.visits], shown.sequence) == ([mine.id], 1)


async def test_a_patient_sees_the_queue_without_the_other_patients_ids(client, desk):
    doctor_id = await doctor_today(client)
    mine, theirs = [await confirmed_today(client, doctor_id) for _ in range(2)]
    await check_in(desk, theirs.id)
    await check_in(desk, mine.id)
    md = Client.auth(mine.patient.id, "patient")
    shown = await desk.GetQueue(f.GetQueueRequest(doctor_id=doctor_id), metadata=md, timeout=10)
    assert [(v.position, v.booking_id, v.patient_id) for v in shown.visits] == [
        (1, "", ""),
        (2, mine.id, mine.patient.id),
    ]


async def test_the_patient_is_told_when_called_in(client, desk, redis):
    doctor_id = await doctor_today(client)
    booking = await confirmed_today(client, doctor_id)
    pid = booking.patient.id
    md = Client.auth(pid, "patient")
    stream = client.notifications.WatchPatient(
        notification_pb2.WatchPatientRequest(patient_id=pid), metadata=md, timeout=20
    )
    try:
        await stream.initial_metadata()  # the watch is registered
        await check_in(desk, booking.id)
        await desk.CallNext(f.CallNextRequest(doctor_id=doctor_id), metadata=staff(), timeout=10)
        seen = []
        async for item in stream:
            if item.HasField("visit"):
                seen.append(item.visit.kind)
                if item.visit.kind == f.QueueChange.KIND_CALLED:
                    assert item.visit.visit.booking_id == booking.id
                    break
    finally:
        stream.cancel()
    assert seen == [f.QueueChange.KIND_CHECKED_IN, f.QueueChange.KIND_CALLED]

    async def called_recorded():  # the confirmation is recorded first; wait for the call itself
        records = [r.decode() for r in await redis.lrange(f"notifications:patient:{pid}", 0, -1)]
        return [r for r in records if booking.id in r and "consultation" in r]

    assert len(await wait_for(called_recorded, what="the call recorded as a notification")) == 1


async def test_the_queue_survives_a_restart_of_frontdesk_svc(client, desk, system):
    doctor_id = await doctor_today(client)
    bookings = [await confirmed_today(client, doctor_id) for _ in range(3)]
    for b in bookings[:2]:
        await check_in(desk, b.id)
    await desk.CallNext(f.CallNextRequest(doctor_id=doctor_id), metadata=staff(), timeout=10)
    before = await queue(desk, doctor_id)
    system.stop(("frontdesk_svc",))
    system.start(only=("frontdesk_svc",))
    after = await wait_for(lambda: _queue_or_none(desk, doctor_id), what="frontdesk_svc back")
    assert list(after.visits) == list(before.visits)
    assert after.sequence == before.sequence == 3
    third = await check_in(desk, bookings[2].id)
    assert third.position == 3
    # The stream holds every change across the restart: a resume replays them in order.
    replayed = await _collect(desk, doctor_id, until=4, after=1)
    assert [(i.change.sequence, i.change.kind) for i in replayed] == [
        (2, f.QueueChange.KIND_CHECKED_IN),
        (3, f.QueueChange.KIND_CALLED),
        (4, f.QueueChange.KIND_CHECKED_IN),
    ]


async def _queue_or_none(desk, doctor_id: str):
    try:
        return await queue(desk, doctor_id)
    except grpc.aio.AioRpcError:
        return None


def _clinic_env(system) -> dict[str, str]:
    return {
        **os.environ,
        "CLINIC_GATEWAY_ADDR": system.gateway_addr,
        "CLINIC_TOKEN": staff()[0][1].removeprefix("Bearer "),
        "COLUMNS": "200",
    }


async def clinic(system, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "clinic_cli", *args],
        env=_clinic_env(system),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_clinic_command_runs_the_front_desk(client, system):
    doctor_id = await doctor_today(client)
    one, two = [await confirmed_today(client, doctor_id) for _ in range(2)]
    follow = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "clinic_cli", "queue", "--doctor", doctor_id, "--follow"),
        env=_clinic_env(system),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for b, position in ((one, 1), (two, 2)):
            done = await clinic(system, "checkin", b.id)
            assert done.returncode == 0, done.stderr
            assert f"#{position} WAITING booking {b.id}" in done.stdout
        done = await clinic(system, "call-next", "--doctor", doctor_id)
        assert done.returncode == 0 and f"#1 IN_CONSULTATION booking {one.id}" in done.stdout, done
        done = await clinic(system, "done", one.id)
        assert done.returncode == 0 and "#1 DONE" in done.stdout, done
        done = await clinic(system, "no-show", two.id)
        assert done.returncode == 0 and "#2 NO_SHOW" in done.stdout, done
        again = await clinic(system, "call-next", "--doctor", doctor_id)
        assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr, again
        shown = await clinic(system, "queue", "--doctor", doctor_id)
        assert shown.returncode == 0 and "change 5" in shown.stdout, shown
        assert one.id in shown.stdout and "NO_SHOW" in shown.stdout
    finally:
        await asyncio.sleep(1.0)
        follow.send_signal(signal.SIGINT)  # Ctrl-C: the live table is left as it last was
        out, err = await asyncio.wait_for(follow.communicate(), 20)
    assert "change 5" in out.decode() and "NO_SHOW" in out.decode(), (out, err)


def _frontdesk_subscriptions(servers) -> list[str]:
    url = f"http://127.0.0.1:{servers.monitor_port}/connz?subs=1"
    with urllib.request.urlopen(url, timeout=5) as reply:
        conns = json.load(reply)["connections"]
    return [
        s for conn in conns if conn.get("name") == "frontdesk_svc" for s in conn.get("subscriptions_list", [])
    ]


async def test_many_watchers_of_a_queue_cost_one_subscription(client, desk, servers):
    doctor_id = await doctor_today(client)
    before = _frontdesk_subscriptions(servers)
    assert before.count(subjects.VISITS_SUBJECTS) == 1
    calls = [
        desk.WatchQueue(
            f.WatchQueueRequest(doctor_id=doctor_id), metadata=Client.auth(f"screen-{i}", "staff")
        )
        for i in range(8)
    ]
    try:
        for call in calls:
            first = await asyncio.wait_for(call.read(), 10)
            assert first.WhichOneof("item") == "snapshot"
        during = _frontdesk_subscriptions(servers)
        assert sorted(during) == sorted(before)  # no subscription per watcher
        visit = await check_in(desk, (await confirmed_today(client, doctor_id)).id)
        for call in calls:  # and every watcher hears the change through the one subscription
            change = await asyncio.wait_for(call.read(), 10)
            assert (change.change.sequence, change.change.visit.booking_id) == (1, visit.booking_id)
    finally:
        for call in calls:
            call.cancel()


async def test_a_change_stored_but_not_published_is_published_once_by_the_sweep(client, desk, redis, servers):
    """As if frontdesk_svc died between its script and the publish: the change is in the queue's
    outbox only. The running instance's sweep publishes it, once, and watchers get it in order."""
    doctor_id = await doctor_today(client)
    first = await check_in(desk, (await confirmed_today(client, doctor_id)).id)
    watch = desk.WatchQueue(f.WatchQueueRequest(doctor_id=doctor_id), metadata=staff(), timeout=30)
    try:
        assert (await watch.read()).snapshot.sequence == 1
        orphan = await confirmed_today(client, doctor_id)
        store = QueueStore(redis)  # the service's own script, run as the dead instance ran it
        visit = f.Visit(
            booking_id=orphan.id,
            patient_id=orphan.patient.id,
            doctor_id=doctor_id,
            date=orphan.appointment_date,
        )
        stored = await store.check_in(QueueId(doctor_id, orphan.appointment_date), visit, uid("op"), 1)
        assert (stored.changed, stored.visit.position, stored.sequence) == (True, 2, 2)
        change = await asyncio.wait_for(watch.read(), 10)
        assert (change.change.sequence, change.change.visit.booking_id) == (2, orphan.id)
        assert first.position == 1
    finally:
        watch.cancel()
    nc = await nats.connect(servers.nats_url)
    try:
        js, found, seq = nc.jetstream(), [], 1
        while True:
            try:
                msg = await js.get_msg(
                    subjects.VISITS_STREAM, seq=seq, subject=f"visits.*.*.{orphan.id}", next=True
                )
            except NotFoundError:
                break
            found.append(msg.seq)
            seq = msg.seq + 1
        assert len(found) == 1
    finally:
        await nc.close()
    assert await redis.hlen(f"{{queue:{doctor_id}:{orphan.appointment_date}}}:outbox") == 0
