"""Generated requests at every public rpc: only the contract's codes come back, never UNKNOWN or
INTERNAL, and nothing breaks for the next caller.

The methods and their fields are read from the generated descriptors of every public clinic.v1
file (the same list reflection serves), so an rpc added later is fuzzed without touching this
file. Every field gets generated text, numbers, enum numbers (defined or not), nested messages
and lists; the caller is an admin, the front desk or a patient (whose token names the patient id
the request carries, when it can, so the id reaches the service's own checks).
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic.v1 import common_pb2
from clinic_common.reflection import public_files
from clinic_common.validate import PATIENT_ID, full
from tests.harness import Client, future_date, patient, uid

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # rate limits and load shedding
}
CALL_TIMEOUT_S = 10.0  # an answer that does not come within this is a failure, not an outcome
# A watch resumed after a sequence not reached yet is live and rightly quiet: it may run out its
# deadline; every other watch answers (its first message, its live header or an error) before it.
WATCH_TIMEOUT_S = 1.5
MAX_DEPTH = 3
# Per method; about 30 methods at a few ms each keeps the whole file to seconds.
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)

T = FieldDescriptor
INTEGER_RANGES = {
    T.TYPE_INT32: (-(2**31), 2**31 - 1),
    T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    T.TYPE_INT64: (-(2**63), 2**63 - 1),
    T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    T.TYPE_UINT32: (0, 2**32 - 1),
    T.TYPE_FIXED32: (0, 2**32 - 1),
    T.TYPE_UINT64: (0, 2**64 - 1),
    T.TYPE_FIXED64: (0, 2**64 - 1),
}


def public_methods() -> list[MethodDescriptor]:
    return [m for f in public_files() for s in f.services_by_name.values() for m in s.methods]


@pytest.fixture(scope="module")
async def known(client):
    """Ids that exist, so generated requests also reach the paths past "not found"."""
    doctor = await client.doctor()
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    return [doctor.id, booking.id, booking.patient.id, doctor.code]


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _hints(name: str, known_ids: list[str]) -> list[str]:
    """Values shaped for the field's name, each with the mistakes a caller makes in that shape."""
    day = future_date()
    if "time" in name or name in ("day_start", "day_end", "start", "end"):
        return ["10:00", "16:45", "10:00".translate(FULL_WIDTH), "10:00\n", "24:00", "9:5", "10:00:00"]
    if "date" in name or name in ("from", "to", "effective_from", "day"):
        return [day, day.translate(FULL_WIDTH), day + "\n", "2026-02-29", "1990-01-01", "2099-12-31", "today"]
    if "phone" in name:
        return [
            "9876543210",
            "9876543210".translate(FULL_WIDTH),
            "+91 98765-43210",
            "9" * 5000,
            "not-a-phone",
        ]
    if "email" in name:
        return ["a@b.co", "no-at-sign", "A@B.CO\n", "a" * 300 + "@b.co"]
    if name == "id" or name.endswith("_id") or name.endswith("_ids") or name in ("code", "page_token"):
        return [*known_ids, *(k + "\n" for k in known_ids), "x\n", "a.b.c", "*", ">", "x" * 300]
    return []


def texts(name: str, known_ids: list[str]) -> st.SearchStrategy[str]:
    generic = st.one_of(
        st.text(max_size=40),
        st.text(alphabet="0123456789:-+ ", max_size=14),
        st.sampled_from(["", " ", "gen-consult", "fail_test_user", "\x00", "\ud7ff\U0010ffff", "x" * 300]),
    )
    hints = _hints(name, known_ids)
    # Mostly the shaped values: a dozen examples a method must reach the parsers behind the fields.
    shaped = st.sampled_from(hints)
    return st.integers(0, 3).flatmap(lambda i: shaped if i else generic) if hints else generic


def scalar(field: FieldDescriptor, known_ids: list[str]) -> st.SearchStrategy:
    if field.type == T.TYPE_STRING:
        return texts(field.name, known_ids)
    if field.type == T.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == T.TYPE_BOOL:
        return st.booleans()
    if field.type == T.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-3, 40))
    if field.type in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return st.floats(allow_nan=True, width=32 if field.type == T.TYPE_FLOAT else 64)
    low, high = INTEGER_RANGES[field.type]
    return st.one_of(st.integers(max(low, -5), min(high, 600)), st.integers(low, high))


def message(descriptor: Descriptor, known_ids: list[str], depth: int = 0) -> st.SearchStrategy[Message]:
    """A message of that type with any subset of its fields set to generated values."""
    parts: dict[str, st.SearchStrategy] = {}
    for field in descriptor.fields:
        if field.type == T.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                key, value = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                if value.type == T.TYPE_MESSAGE:
                    continue
                one = st.dictionaries(scalar(key, known_ids), scalar(value, known_ids), max_size=3)
            elif depth >= MAX_DEPTH:
                continue
            else:
                one = message(field.message_type, known_ids, depth + 1)
        else:
            one = scalar(field, known_ids)
        if field.is_repeated and not _is_map(field):
            one = st.lists(one, max_size=4) | st.lists(one, min_size=20, max_size=30)
        parts[field.name] = st.integers(0, 2).flatmap(lambda i, one=one: one if i else st.none())
    cls = _message_class(descriptor)
    return st.fixed_dictionaries(parts).map(lambda values: _build(cls, descriptor, values))


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == T.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _message_class(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def _build(cls: type[Message], descriptor: Descriptor, values: dict) -> Message:
    built = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = descriptor.fields_by_name[name]
        target = getattr(built, name)
        if _is_map(field):
            target.update(value)
        elif field.is_repeated and field.type == T.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        elif field.is_repeated:
            target.extend(value)
        elif field.type == T.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(built, name, value)
    return built


def _patient_in(request: Message) -> str:
    """The patient id the request names, when a patient's token could carry it."""
    for name in ("patient_id",):
        value = getattr(request, name, "") if name in request.DESCRIPTOR.fields_by_name else ""
        if value and len(value) <= 64 and full(PATIENT_ID, value):
            return value
    if "patient" in request.DESCRIPTOR.fields_by_name and request.HasField("patient"):
        value = request.patient.id
        if value and len(value) <= 64 and full(PATIENT_ID, value):
            return value
    return ""


def _caller(role: str, request: Message) -> list[tuple[str, str]]:
    if role == "patient":
        return Client.auth(_patient_in(request) or uid("fuzz-p"), "patient")
    return Client.auth(uid(f"fuzz-{role}"), role)  # a caller per example: the rate limit is not under test


def _call(channel: grpc.Channel, method: MethodDescriptor, request: Message, metadata) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if not method.server_streaming:
        channel.unary_unary(path)(request.SerializeToString(), metadata=metadata, timeout=CALL_TIMEOUT_S)
        return
    call = channel.unary_stream(path)(request.SerializeToString(), metadata=metadata, timeout=WATCH_TIMEOUT_S)
    try:
        # A watch is well under way once its header says it is live or its first message is in.
        if ("x-clinic-watch", "live") not in tuple(call.initial_metadata() or ()):
            next(call, None)
    finally:
        call.cancel()


@pytest.fixture(scope="module")
def channel(system):
    with grpc.insecure_channel(system.gateway_addr) as ch:
        yield ch


@pytest.mark.parametrize("method", public_methods(), ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_generated_requests_get_only_contract_codes(channel, known, method):
    @given(request=message(method.input_type, known), role=st.sampled_from(["admin", "staff", "patient"]))
    @SETTINGS
    def one(request, role):
        try:
            _call(channel, method, request, _caller(role, request))
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED:  # ours, after the first message of a watch
                return
            if method.server_streaming and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                assert getattr(request, "after_sequence", 0) > 0, (err.code(), request)
                return
            assert err.code() in ALLOWED, (err.code(), err.details(), request)

    one()


async def test_a_normal_booking_still_confirms_after_the_fuzzing(client):
    made = await client.create(
        common_pb2.Patient(
            id=uid("after-fuzz"), name="Ravi", gender=common_pb2.GENDER_MALE, date_of_birth="1980-01-31"
        ),
        ["gen-consult"],
        appointment_date=future_date(),
    )
    settled = await client.settled(made.id, notified=False)
    assert settled.status == common_pb2.BOOKING_STATUS_CONFIRMED
