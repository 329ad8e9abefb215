"""booking_svc on the bus: the saga replies it consumes and the background duties it runs."""

from __future__ import annotations

from nats.aio.msg import Msg

from clinic.v1 import saga_pb2
from clinic_common import subjects
from clinic_common.consumer import ConsumerSpec, Poison, decode
from clinic_common.errors import NotFound
from clinic_common.logs import get_logger

from .saga import Bookings

log = get_logger(__name__)

CONSUMER = ConsumerSpec.of(
    subjects.BOOKING_CONSUMER,
    (
        "booking_svc: places and discount decisions, waitlist offers and their expiry, released places "
        "and quota, reschedules' outcomes, doctors marked absent on a booking's day"
    ),
)


def make_handler(bookings: Bookings):
    routes = {
        subjects.PLACES_DECIDED: (saga_pb2.PlacesDecided, bookings.on_places_decided),
        subjects.PLACES_RELEASED: (saga_pb2.PlacesReleased, bookings.on_places_released),
        subjects.PLACES_OFFERED: (saga_pb2.PlacesOffered, bookings.on_places_offered),
        subjects.PLACES_EXPIRED: (saga_pb2.OfferExpired, bookings.on_offer_expired),
        subjects.DISCOUNT_DECIDED: (saga_pb2.DiscountDecided, bookings.on_discount_decided),
        subjects.QUOTA_RELEASED: (saga_pb2.QuotaReleased, bookings.on_quota_released),
        subjects.PLACES_MOVED: (saga_pb2.PlacesMoved, bookings.on_places_moved),
        subjects.DOCTOR_UNAVAILABLE: (saga_pb2.DoctorUnavailable, bookings.on_doctor_unavailable),
    }

    async def handle(msg: Msg) -> None:
        prefix, _, booking_id = msg.subject.rpartition(".")
        route = routes.get(prefix)
        if route is None:
            raise Poison(f"no handler for subject {msg.subject}")
        message_type, on_message = route
        payload = decode(message_type, msg.data, booking_id)
        try:
            await on_message(payload)
        except NotFound as exc:
            raise Poison(str(exc)) from exc

    return handle
