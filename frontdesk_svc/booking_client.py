"""frontdesk_svc reads bookings from booking_svc over gRPC, as the caller.

The caller's identity goes along, so booking_svc applies its own rule (a patient reads only their
own bookings; staff and admin any): another patient's booking is PERMISSION_DENIED there.
"""

from __future__ import annotations

import grpc

from clinic.v1 import booking_pb2, booking_pb2_grpc, common_pb2
from clinic_common import principal as principals
from clinic_common.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

CALL_TIMEOUT_S = 3.0


class BookingClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._bookings = booking_pb2_grpc.BookingServiceStub(channel)

    async def get(self, booking_id: str, who: principals.Principal) -> common_pb2.Booking:
        try:
            response = await self._bookings.GetBooking(
                booking_pb2.GetBookingRequest(booking_id=booking_id),
                metadata=[(principals.SUB_KEY, who.sub), (principals.ROLE_KEY, who.role)],
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            code, details = err.code(), err.details() or ""
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFound(details or f"booking {booking_id} not found") from None
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(details or "permission denied") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument([("booking_id", details or "must be a booking id")]) from None
            raise Unavailable(f"booking_svc unavailable: {code.name} {details}".strip()) from None
        return response.booking
