"""`clinic patients|doctors|availability` and `clinic book --doctor --at`, run as the front desk would."""

from __future__ import annotations

import re
from datetime import date

from tests.harness import future_date, uid
from tests.integration.test_cli import clinic


async def test_the_front_desk_registers_adds_a_doctor_and_books_a_time(system):
    phone = "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))
    register = ["patients", "register", "--name", "Asha Rao", "--gender", "female", "--dob", "1990-11-22"]
    first = await clinic(system, *register, "--phone", phone)
    assert first.returncode == 0, first.stderr
    patient_id = re.search(r"patient (p-[0-9a-f]+) registered", first.stdout).group(1)
    again = await clinic(system, *register, "--phone", f"+91 {phone[:5]}-{phone[5:]}")
    assert f"patient {patient_id} already registered" in again.stdout
    found = await clinic(system, "patients", "find", "--phone", phone)
    assert patient_id in found.stdout and f"+91{phone}" in found.stdout

    code = uid("DR")
    added = await clinic(
        system,
        "doctors",
        "add",
        "--code",
        code,
        "--name",
        "Dr Meera Rao",
        "--services",
        "gen-consult",
        "--capacity",
        "4",
        "--start",
        "10:00",
        "--end",
        "12:00",
        "--slot",
        "20",
    )
    assert added.returncode == 0, added.stderr
    doctor_id = re.search(r"doctor (d-[0-9a-f]+) added", added.stdout).group(1)
    assert doctor_id in (await clinic(system, "doctors", "list", "--service", "gen-consult")).stdout

    day = future_date()
    booked = await clinic(
        system,
        "book",
        "--patient",
        patient_id,
        "--doctor",
        doctor_id,
        "--at",
        "10:40",
        "--date",
        day,
        "gen-consult",
    )
    assert booked.returncode == 0, booked.stdout + booked.stderr
    assert "PLACES_RESERVED" in booked.stdout and "CONFIRMED" in booked.stdout
    assert f"{doctor_id} at 10:40 for 20 min, token 1" in booked.stdout

    view = await clinic(system, "doctors", "day", doctor_id, "--date", day)
    assert "capacity 4, booked 1, remaining 3" in view.stdout
    assert "free times: 10:00 10:20 11:00 11:20 11:40" in view.stdout

    absent = await clinic(
        system, "availability", "set", doctor_id, "--date", day, "--absent", "--note", "ill"
    )
    assert "absent — ill" in absent.stdout and "remaining 0" in absent.stdout
    refused = await clinic(
        system, "book", "--patient", patient_id, "--doctor", doctor_id, "--date", day, "gen-consult"
    )
    assert refused.returncode == 1 and "DOCTOR_UNAVAILABLE" in refused.stdout


async def test_a_bad_phone_is_named(system):
    done = await clinic(
        system,
        "patients",
        "register",
        "--name",
        "X",
        "--phone",
        "call me",
        "--gender",
        "male",
        "--dob",
        "1980-01-01",
    )
    assert done.returncode != 0
    assert "phone" in done.stderr and "Traceback" not in done.stderr


async def test_the_desk_edits_a_patient_plans_a_week_marks_leave_and_finds_slots(system):
    phone = "9" + uid("")[-9:].translate(str.maketrans("abcdef", "123456"))
    register = ["patients", "register", "--name", "Ravi", "--gender", "male", "--dob", "1980-01-02"]
    first = await clinic(system, *register, "--phone", phone)
    patient_id = re.search(r"patient (p-[0-9a-f]+) registered", first.stdout).group(1)
    new_phone = "8" + phone[1:]
    specialty = uid("geriatrics")
    updated = await clinic(
        system, "patients", "update", patient_id, "--phone", new_phone, "--contact", "sms,whatsapp"
    )
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert f"patient {patient_id} updated (phone, contact); contact: sms, whatsapp" in updated.stdout
    assert patient_id in (await clinic(system, "patients", "find", "--phone", new_phone)).stdout

    added = await clinic(
        system,
        "doctors",
        "add",
        "--code",
        uid("DR"),
        "--name",
        "Dr Iyer",
        "--services",
        "gen-consult",
        "--specialty",
        specialty,
    )
    doctor_id = re.search(r"doctor (d-[0-9a-f]+) added", added.stdout).group(1)
    renamed = await clinic(system, "doctors", "update", doctor_id, "--name", "Dr K Iyer", "--slot", "30")
    assert renamed.returncode == 0 and "Dr K Iyer" in renamed.stdout and "30 min" in renamed.stdout

    day = future_date(120)
    weekday = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][date.fromisoformat(day).weekday()]
    planned = await clinic(
        system,
        "doctors",
        "plan",
        doctor_id,
        "--from",
        future_date(110),
        "--day",
        f"{weekday} 10:00-13:00 break 11:00-11:30",
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    view = await clinic(system, "doctors", "day", doctor_id, "--date", day)
    assert "10:00-13:00 (from weekly plan)" in view.stdout and "breaks: 11:00-11:30" in view.stdout
    assert "free times: 10:00 10:30 11:30 12:00 12:30" in view.stdout

    found = await clinic(system, "slots", "--specialty", specialty, "--from", day, "--limit", "3")
    assert found.returncode == 0 and doctor_id in found.stdout

    booked = await clinic(
        system,
        "book",
        "--patient",
        patient_id,
        "--doctor",
        doctor_id,
        "--at",
        "12:00",
        "--date",
        day,
        "gen-consult",
    )
    assert booked.returncode == 0, booked.stdout + booked.stderr
    booking_id = re.search(r"\b(b-[0-9a-f]+|[0-9a-f]{32})\b", booked.stdout).group(1)
    leave = await clinic(system, "doctors", "leave", doctor_id, "--from", day, "--note", "conference")
    assert leave.returncode == 0 and f"{doctor_id} {day}: on leave" in leave.stdout
    assert booking_id in leave.stdout
    affected = await clinic(system, "doctors", "affected", doctor_id, "--date", day)
    assert affected.returncode == 0 and booking_id in affected.stdout and "12:00" in affected.stdout
