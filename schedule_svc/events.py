"""schedule_svc on the bus: the durable consumer of place requests and releases."""

from __future__ import annotations

from nats.aio.msg import Msg

from clinic.v1 import saga_pb2
from clinic_common import subjects
from clinic_common.clock import parse_date
from clinic_common.consumer import ConsumerSpec, Poison, decode, same_booking
from clinic_common.errors import NotFound
from clinic_common.timeutil import parse_hhmm

from .schedule import Places, Registry

CONSUMER = ConsumerSpec.of(
    subjects.SCHEDULE_CONSUMER,
    (
        "schedule_svc: reserve a booking's places (services, doctor's token, time) or queue it on the "
        "waitlist, release them, take an accepted waitlist offer, move them (reschedule), count a "
        "patient's no-shows"
    ),
)


def make_handler(places: Places, registry: Registry | None = None):
    async def handle(msg: Msg) -> None:
        prefix, _, booking_id = msg.subject.rpartition(".")
        if prefix == subjects.PLACES_REQUESTED:
            request = saga_pb2.PlacesRequested.FromString(msg.data)
            _check(request, booking_id)
            run = places.on_requested(request)
        elif prefix == subjects.PLACES_RELEASE:
            release = decode(saga_pb2.PlacesReleaseRequested, msg.data, booking_id)
            _check(release.places, booking_id)
            run = places.on_release_requested(release)
        elif prefix == subjects.PLACES_ACCEPT:
            accept = decode(saga_pb2.PlacesAccept, msg.data, booking_id)
            try:
                parse_date(accept.appointment_date)
            except ValueError as exc:
                raise Poison(f"bad date: {exc}") from exc
            run = places.on_accept(accept)
        elif prefix == subjects.PLACES_MOVE:
            move = decode(saga_pb2.PlacesMove, msg.data, booking_id)
            if move.number < 1:
                raise Poison(f"move number {move.number} is not a move")
            _check(move.current, booking_id)
            _check(move.target, booking_id)
            run = places.on_move(move)
        elif prefix == subjects.PATIENT_NO_SHOW and registry is not None:
            counted = saga_pb2.PatientNoShow.FromString(msg.data)
            if counted.booking_id != booking_id or not counted.patient_id:
                raise Poison("no-show without its booking or patient")
            run = registry.count_no_show(counted.patient_id, counted.booking_id)
        else:
            raise Poison(f"no handler for subject {msg.subject}")
        try:
            await run
        except NotFound as exc:  # a doctor or service that is not there will not appear on retry
            raise Poison(str(exc)) from exc

    return handle


def _check(request: saga_pb2.PlacesRequested, subject_id: str) -> None:
    same_booking(request.booking_id, subject_id)
    try:
        parse_date(request.appointment_date)
        if request.start_time:
            parse_hhmm(request.start_time)
    except ValueError as exc:
        raise Poison(f"bad date or time: {exc}") from exc
