"""Check-ins for today's queue of one doctor while the faults run; afterwards the queue must hold
positions 1..n, each given once, and VISITS every change once (frontdesk_svc, issue 11). Every
third booking is also moved to another doctor at the moment it checks in: exactly one of the two
may win (the visit in the queue and the booking unmoved, or the booking moved and no visit; issue 19)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import nats
from nats.js.errors import NotFoundError

from clinic.v1 import booking_pb2, frontdesk_pb2, frontdesk_pb2_grpc
from clinic.v1 import common_pb2 as c
from clinic_common import subjects
from tests.harness import Client, Servers, patient, today_ist, uid


class CheckIns:
    def __init__(self, client: Client, report, count: int, spacing_s: float, retrying) -> None:
        self._client = client
        self._report = report
        self._count = count
        self._spacing_s = spacing_s
        self._retrying = retrying
        self._desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
        self.doctor_id = ""
        self.other_id = ""  # where the raced bookings are moved to
        self.checked_in: set[str] = set()  # the bookings not raced, all checked in to doctor_id's queue
        self.raced: dict[str, bool] = {}  # booking id -> its CheckIn answered OK (in whichever queue)

    async def run(self) -> None:
        doctor = await self._client.doctor(daily_capacity=self._count + 5)
        self.doctor_id = doctor.id
        self.other_id = (await self._client.doctor(daily_capacity=self._count + 5)).id
        tasks = []
        for i in range(self._count):
            tasks.append(asyncio.create_task(self._one(race=i % 3 == 0)))
            await asyncio.sleep(self._spacing_s)
        await asyncio.gather(*tasks)

    async def _one(self, race: bool) -> None:
        md = self._client.auth()
        req = booking_pb2.CreateBookingRequest(
            patient=patient(), service_ids=["gen-consult"], doctor_id=self.doctor_id, request_id=uid("queue")
        )
        booking = (
            await self._retrying(lambda: self._client.bookings.CreateBooking(req, metadata=md, timeout=10))
        ).booking
        deadline = time.monotonic() + 120
        get = booking_pb2.GetBookingRequest(booking_id=booking.id)
        while booking.status != c.BOOKING_STATUS_CONFIRMED:
            if booking.status in (c.BOOKING_STATUS_REJECTED, c.BOOKING_STATUS_CANCELLED):
                self._report.problems.append(f"queue booking {booking.id} ended {booking.status}")
                return
            if time.monotonic() > deadline:
                self._report.problems.append(f"queue booking {booking.id} was not confirmed in time")
                return
            await asyncio.sleep(0.3)
            booking = (
                await self._retrying(lambda: self._client.bookings.GetBooking(get, metadata=md, timeout=10))
            ).booking
        if race:
            checked, _ = await asyncio.gather(self._check_in(booking.id, md), self._move(booking.id, md))
            self.raced[booking.id] = checked
        elif await self._check_in(booking.id, md):
            self.checked_in.add(booking.id)
        else:
            self._report.problems.append(f"queue booking {booking.id} was refused its check-in")

    async def _check_in(self, booking_id: str, md) -> bool:
        check_in = frontdesk_pb2.CheckInRequest(booking_id=booking_id)
        try:
            await self._retrying(lambda: self._desk.CheckIn(check_in, metadata=md, timeout=10))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:  # a reschedule has it
                return False
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:  # a retry after a lost reply: it is in
                raise
        return True

    async def _move(self, booking_id: str, md) -> None:
        req = booking_pb2.RescheduleBookingRequest(
            booking_id=booking_id, doctor_id=self.other_id, request_id=uid("race")
        )
        try:
            await self._retrying(
                lambda: self._client.bookings.RescheduleBooking(req, metadata=md, timeout=10)
            )
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:  # checked in first
                raise

    async def _in_queue(self, doctor_id: str) -> set[str]:
        req = frontdesk_pb2.GetQueueRequest(doctor_id=doctor_id)
        md = self._client.auth()
        shown = await self._retrying(lambda: self._desk.GetQueue(req, metadata=md, timeout=10))
        return {v.booking_id for v in shown.visits}

    async def verify_races(self) -> str:
        """Once every move has its answer: never a visit in the queue a booking left; the patient
        checked in there and the booking stayed, or it moved and the check-in was refused or landed
        in the new doctor's queue."""
        md = self._client.auth()
        old, new = await self._in_queue(self.doctor_id), await self._in_queue(self.other_id)
        seen: Counter[str] = Counter()
        for booking_id, answered_ok in self.raced.items():
            get = booking_pb2.GetBookingRequest(booking_id=booking_id)

            async def read(get=get) -> c.Booking:
                call = self._client.bookings.GetBooking
                return (await self._retrying(lambda: call(get, metadata=md, timeout=10))).booking

            b = await read()
            deadline = time.monotonic() + 60
            while b.status_message.startswith("Reschedule requested") and time.monotonic() < deadline:
                await asyncio.sleep(0.3)  # the move's answer is still on its way
                b = await read()
            gone, there, elsewhere = b.doctor_id == self.other_id, booking_id in old, booking_id in new
            if (
                (gone and there)
                or not (gone or there)
                or (elsewhere and not gone)
                or (answered_ok != (there or elsewhere))
            ):
                self._report.problems.append(
                    f"check-in/reschedule race on {booking_id}: moved {gone}, in the old queue {there}, "
                    f"in the new {elsewhere}, CheckIn answered {'OK' if answered_ok else 'refused'}"
                )
            seen["moved, visit left behind" if gone and there else "moved" if gone else "checked in"] += 1
            seen["then checked in where it went"] += elsewhere
        figures = ", ".join(f"{n} {what}" for what, n in sorted(seen.items()))
        return f"check-in vs reschedule races {len(self.raced)}: {figures or 'none'}"

    async def verify(self, servers: Servers) -> str:
        """Adds what is wrong to the report's problems; returns the figures line."""
        n = len(self.checked_in)
        req = frontdesk_pb2.GetQueueRequest(doctor_id=self.doctor_id)
        shown = await self._retrying(
            lambda: self._desk.GetQueue(req, metadata=self._client.auth(), timeout=10)
        )
        positions = [v.position for v in shown.visits]
        listed = {v.booking_id for v in shown.visits}
        raced_in = listed - self.checked_in  # verify_races says whether each belongs there
        if (
            sorted(positions) != list(range(1, len(listed) + 1))
            or not self.checked_in <= listed
            or not raced_in <= set(self.raced)
        ):
            self._report.problems.append(f"queue positions {sorted(positions)} for {n} check-ins")
        sequences = await asyncio.wait_for(self._stream_sequences(servers, shown.sequence), 60)
        # Each change once; two instances may publish neighbours out of order (watchers release by
        # sequence and fill holes, so the stream's order is not what a client sees).
        if sorted(sequences) != list(range(1, shown.sequence + 1)):
            self._report.problems.append(f"VISITS holds changes {sequences}, the queue {shown.sequence}")
        low, high = min(positions, default=0), max(positions, default=0)
        return (
            f"check-ins {n} (+{len(raced_in)} raced): positions {low}..{high}, "
            f"VISITS changes {len(sequences)} (each once)"
        )

    async def _stream_sequences(self, servers: Servers, changes: int) -> list[int]:
        """The queue's change sequences as stored in VISITS, in stream order (once the outbox is empty)."""
        nc = await nats.connect(servers=servers.nats_servers)
        try:
            js = nc.jetstream()
            subject = subjects.queue_subjects(self.doctor_id, today_ist().isoformat())
            while True:
                found, seq = [], 1
                while True:
                    try:
                        msg = await js.get_msg(subjects.VISITS_STREAM, seq=seq, subject=subject, next=True)
                    except NotFoundError:
                        break
                    except nats.errors.TimeoutError:  # the stream has no leader yet after the kills
                        await asyncio.sleep(0.5)  # the caller's 60 s deadline bounds this
                        continue
                    found.append(frontdesk_pb2.QueueChange.FromString(msg.data).sequence)
                    seq = msg.seq + 1
                if len(found) >= changes:
                    return found
                await asyncio.sleep(0.5)  # a change still in an outbox: the sweep publishes it
        finally:
            await nc.close()
