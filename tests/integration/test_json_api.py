"""JSON over HTTP through the real Envoy edge: the gRPC-JSON mapping of the protos and its OpenAPI document.

A plain HTTP client (urllib), the same JWT as gRPC; gRPC keeps working on the same listener.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from clinic.v1 import booking_pb2, common_pb2
from gateway.auth import mint
from tests.harness import SECRET, future_date, uid, wait_for

CREATE = "/clinic.v1.BookingService/CreateBooking"
GET = "/clinic.v1.BookingService/GetBooking"


def call(addr: str, path: str, body: dict | None = None, token: str | None = None, method: str = "POST"):
    """(status, parsed JSON body) of one HTTP/1.1 request to the edge."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


async def http(addr: str, path: str, body: dict | None = None, token: str | None = None, **kw):
    return await asyncio.to_thread(call, addr, path, body, token, **kw)


def admin() -> str:
    return mint(SECRET, "operator", "admin")


async def test_create_booking_as_json_and_read_it_back(system, client):
    pid = uid("json")
    body = {
        "patient": {"id": pid, "name": "Json Caller", "gender": "GENDER_MALE", "dateOfBirth": "1980-01-02"},
        "serviceIds": ["gen-consult"],
        "appointmentDate": future_date(),
        "requestId": uid("req"),
    }
    status, created = await http(system.gateway_addr, CREATE, body, admin())
    assert status == 200, created
    booking = created["booking"]
    assert booking["patient"]["id"] == pid and booking["status"] == "BOOKING_STATUS_PENDING"
    assert booking["basePrice"] == {"currency": "INR", "amountMinor": "50000"}  # int64: a JSON string

    async def confirmed():
        _, got = await http(system.gateway_addr, GET, {"bookingId": booking["id"]}, admin())
        return got if got["booking"]["status"] == "BOOKING_STATUS_CONFIRMED" else None

    await wait_for(confirmed, 20, "the JSON booking to be confirmed")
    # The same booking over gRPC, on the same listener.
    grpc_view = await client.get(booking["id"])
    assert grpc_view.status == common_pb2.BOOKING_STATUS_CONFIRMED


async def test_json_needs_the_same_token_and_roles(system):
    body = {"bookingId": "b-does-not-matter"}
    status, answer = await http(system.gateway_addr, GET, body)
    assert status == 401
    assert isinstance(answer, str) and "Jwt is missing" in answer  # the edge refused it, as for gRPC
    forged = mint("another-secret-0123456789abcdefghijkl", "operator", "admin")
    status, answer = await http(system.gateway_addr, GET, body, forged)
    assert status == 401 and "Jwt" in answer
    # A patient may not list another patient's bookings: PERMISSION_DENIED as 403 with a JSON Status.
    other = mint(SECRET, uid("p"), "patient")
    listing = "/clinic.v1.BookingService/ListBookings"
    status, answer = await http(system.gateway_addr, listing, {"patientId": uid("p")}, other)
    assert status == 403, answer
    assert answer["code"] == 7  # google.rpc.Code.PERMISSION_DENIED


async def test_bad_json_input_names_the_fields_and_books_nothing(system, client):
    pid = uid("json")
    body = {"patient": {"id": pid, "name": "", "dateOfBirth": "not-a-date"}, "serviceIds": ["no-such"]}
    status, answer = await http(system.gateway_addr, CREATE, body, admin())
    assert status == 400, answer
    assert answer["code"] == 3  # INVALID_ARGUMENT
    (detail,) = [d for d in answer["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    fields = {v["field"] for v in detail["fieldViolations"]}
    assert {"service_ids[0]", "patient.date_of_birth"} <= fields, fields
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=pid), metadata=client.auth(), timeout=10
    )
    assert not listed.bookings


async def test_openapi_document_describes_the_json_calls_without_a_token(system):
    status, doc = await http(system.gateway_addr, "/openapi.json", method="GET")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    operation = doc["paths"][CREATE]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rpartition("/")[2]]
    assert {"patient", "serviceIds", "appointmentDate", "doctorId", "startTime"} <= set(schema["properties"])
    # Every public method is there, and every $ref resolves.
    assert "/clinic.v1.DoctorService/GetDoctorDay" in doc["paths"]
    assert "/clinic.v1.NotificationService/WatchBooking" in doc["paths"]
    text = json.dumps(doc)
    for name in {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}:
        assert name in doc["components"]["schemas"], name


async def test_the_readme_curl_commands_work_as_printed(system, client):
    """The README's JSON and FHIR commands, run as printed (address, token and ids filled in)."""
    import subprocess

    from tests.harness import ROOT
    from tests.integration.test_fhir import next_day, registered
    from tests.integration.test_readme import as_a_reader, readme_commands

    doctor = await client.doctor()
    day = future_date()
    filled = {
        "<doctor_id>": doctor.id,
        "<date>": day,
        "<next_date>": next_day(day),
        "<patient_id>": (await registered(client)).id,
        "json-7f3c": uid("json"),  # a request id of its own per run
        "p-json-1": uid("p-json"),
    }
    commands = readme_commands("curl")
    assert any("/openapi.json" in c for c in commands)
    assert any("/clinic.v1.BookingService/CreateBooking" in c for c in commands)
    assert any("/fhir/R4/Appointment" in c for c in commands)
    env = as_a_reader(admin())
    for command in commands:
        command = command.replace("127.0.0.1:50051", system.gateway_addr).replace("curl -s ", "curl -sf ", 1)
        for placeholder, value in filled.items():
            command = command.replace(placeholder, value)
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", command],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and done.stdout.strip(), (command, done.stdout, done.stderr)


async def test_grpc_web_still_works_beside_the_json_mapping(system):
    """The page's protocol on the same listener: a grpc-web call is not mistaken for JSON."""
    import struct

    message = booking_pb2.ListServicesRequest().SerializeToString()
    request = urllib.request.Request(
        f"http://{system.gateway_addr}/clinic.v1.BookingService/ListServices",
        data=b"\x00" + struct.pack(">I", len(message)) + message,
        method="POST",
    )
    for key, value in {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "authorization": f"Bearer {admin()}",
    }.items():
        request.add_header(key, value)

    def send() -> tuple[str, bytes]:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["content-type"], response.read()

    content_type, body = await asyncio.to_thread(send)
    assert content_type.startswith("application/grpc-web")
    flag, size = body[0], struct.unpack(">I", body[1:5])[0]
    assert flag == 0
    listed = booking_pb2.ListServicesResponse.FromString(body[5 : 5 + size])
    assert any(s.id == "gen-consult" for s in listed.services)
    assert b"grpc-status:0" in body[5 + size :]
