"""The desk's tables name people: the doctor's and the patient's names, with the id beside them."""

from __future__ import annotations

from clinic.v1 import frontdesk_pb2, frontdesk_pb2_grpc
from tests.harness import Client, patient, today_ist, uid
from tests.integration.test_cli import clinic


async def test_queue_and_booking_tables_show_names_beside_ids(system, client):
    doctor = await client.doctor()
    who = patient(uid("named"), name="Asha Rao")
    made = await client.create(who, ["gen-consult"], doctor_id=doctor.id)
    booking = await client.settled(made.id, notified=False)
    assert booking.appointment_date == today_ist().isoformat()
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    await desk.CheckIn(
        frontdesk_pb2.CheckInRequest(booking_id=booking.id), metadata=Client.auth(), timeout=10
    )

    shown = await clinic(system, "queue", "--doctor", doctor.id)
    assert shown.returncode == 0, shown.stderr
    assert f"queue of {doctor.name} ({doctor.id})" in shown.stdout, shown.stdout
    assert f"Asha Rao ({who.id})" in shown.stdout, shown.stdout

    listed = await clinic(system, "bookings", "--patient", who.id)
    assert listed.returncode == 0, listed.stderr
    assert f"Asha Rao ({who.id})" in listed.stdout and f"{doctor.name} ({doctor.id})" in listed.stdout
