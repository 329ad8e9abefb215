"""`clinic get <reference>`, `clinic pay`, `clinic bookings --csv`, `clinic summary`, `clinic receipt`."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from clinic.v1 import common_pb2 as c
from clinic.v1 import patient_pb2
from clinic_cli.desk import CSV_COLUMNS
from tests.harness import Client, today_ist, uid
from tests.integration.test_cli import clinic
from tests.integration.test_payments import STAFF, confirmed


async def test_the_desk_takes_money_and_prints_the_day_sheet_summary_and_receipt(system, client: Client):
    day = (today_ist() + timedelta(days=364)).isoformat()  # future_date() picks 1..360: this day is ours
    doctor = await client.doctor(daily_capacity=5)
    phone = "98" + uid("")[-8:].translate(str.maketrans("abcdef", "123456"))
    registered = (
        await client.patients.RegisterPatient(
            patient_pb2.RegisterPatientRequest(
                name="Meera Iyer", phone=phone, gender=c.GENDER_FEMALE, date_of_birth="1980-01-02"
            ),
            metadata=STAFF,
        )
    ).patient
    booking = await client.create(
        c.Patient(id=registered.id),
        ["gen-consult"],
        appointment_date=day,
        doctor_id=doctor.id,
        start_time="10:15",
    )
    booking = await client.settled(booking.id, notified=False)
    other = await confirmed(client, appointment_date=day, doctor_id=doctor.id)

    got = await clinic(system, "get", booking.reference.lower())
    assert got.returncode == 0, got.stderr
    assert booking.id in got.stdout and booking.reference in got.stdout

    paid = await clinic(system, "pay", booking.reference, "200.00", "--method", "upi", "--reference", "UPI77")
    assert paid.returncode == 0, paid.stderr
    assert "PARTIALLY_PAID" in paid.stdout
    too_much = await clinic(system, "pay", booking.reference, "300.01", "--method", "cash")
    assert too_much.returncode != 0 and "FAILED_PRECONDITION" in too_much.stderr

    sheet = await clinic(system, "bookings", "--date", day, "--csv")
    assert sheet.returncode == 0, sheet.stderr
    rows = list(csv.reader(io.StringIO(sheet.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_ref = {r[0]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    row = by_ref[booking.reference]
    assert (row["date"], row["time"], row["token"]) == (day, "10:15", str(booking.token))
    assert (row["doctor"], row["patient"], row["phone"]) == ("Dr Test", "Meera Iyer", registered.phone)
    assert (row["status"], row["final_price"], row["paid"]) == ("CONFIRMED", "500.00", "200.00")
    assert row["services"] == "General consultation"
    assert by_ref[other.reference]["paid"] == "0.00"
    ranged = await clinic(system, "bookings", "--from", day, "--to", day, "--csv")
    assert ranged.returncode == 0, ranged.stderr
    assert sorted(ranged.stdout.splitlines()) == sorted(sheet.stdout.splitlines())

    summary = json.loads((await clinic(system, "summary", "--date", day, "--json")).stdout)
    assert summary["bookings"] == 2 and summary["payments"]["amountMinor"] == "20000"
    printed = await clinic(system, "summary", "--date", day)
    assert printed.returncode == 0 and "₹200.00" in printed.stdout

    receipt = await clinic(system, "receipt", booking.reference, extra_env={"CLINIC_NAME": "Sunrise Clinic"})
    assert receipt.returncode == 0, receipt.stderr
    text = receipt.stdout
    for expected in ("Sunrise Clinic", booking.reference, "General consultation", "upi", "UPI77", "₹200.00"):
        assert expected in text, (expected, text)
    assert "Iyer" not in text  # the first name only
    for bad in ("x" * 81, "Sunrise\nClinic"):  # the gateway's CLINIC_NAME rule, named, nothing printed
        refused = await clinic(system, "receipt", booking.reference, extra_env={"CLINIC_NAME": bad})
        assert refused.returncode == 2 and "CLINIC_NAME" in refused.stderr, refused
        assert booking.reference not in refused.stdout
