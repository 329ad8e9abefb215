"""discount_svc on the bus: the durable consumer of discount requests and quota releases."""

from __future__ import annotations

from nats.aio.msg import Msg

from clinic.v1 import saga_pb2
from clinic_common import subjects
from clinic_common.clock import parse_date
from clinic_common.consumer import ConsumerSpec, Poison, same_booking

from .decisions import Discounts

CONSUMER = ConsumerSpec.of(
    subjects.DISCOUNT_CONSUMER,
    (
        "discount_svc: R1, blocklist and R2 quota decisions for bookings that hold their places; "
        "quota releases (compensation)"
    ),
)


def make_handler(discounts: Discounts):
    async def handle(msg: Msg) -> None:
        prefix, _, booking_id = msg.subject.rpartition(".")
        if prefix == subjects.PLACES_RESERVED:  # schedule_svc hands a reservation on (the usual path)
            places = saga_pb2.PlacesDecided.FromString(msg.data)
            if not places.reserved or not places.HasField("discount"):
                raise Poison("a reservation without held places or without its discount request")
            same_booking(places.booking_id, booking_id)
            request = places.discount
            places.ClearField("discount")
            _check_request(request, booking_id)
            await discounts.on_requested(request, places)
        elif prefix == subjects.DISCOUNT_REQUESTED:
            request = saga_pb2.DiscountRequested.FromString(msg.data)
            _check_request(request, booking_id)
            await discounts.on_requested(request)
        elif prefix == subjects.QUOTA_RELEASE:
            release = saga_pb2.QuotaReleaseRequested.FromString(msg.data)
            _check(release.booking_id, booking_id, release.quota_date)
            await discounts.on_release_requested(release)
        else:
            raise Poison(f"no handler for subject {msg.subject}")

    return handle


def _check_request(request: saga_pb2.DiscountRequested, subject_id: str) -> None:
    _check(request.booking_id, subject_id, request.clinic_date)
    try:
        parse_date(request.date_of_birth)
    except ValueError as exc:
        raise Poison(f"bad date_of_birth: {exc}") from exc


def _check(payload_id: str, subject_id: str, day: str) -> None:
    same_booking(payload_id, subject_id)
    try:
        parse_date(day)
    except ValueError as exc:
        raise Poison(f"bad quota day: {exc}") from exc
