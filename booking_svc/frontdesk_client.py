"""booking_svc asks frontdesk_svc, over gRPC and as the caller, whether a booking is checked in.

Check-in is frontdesk_svc's: a booking the patient has checked in for is not moved any more. Only
bookings dated today can be checked in, so only those are asked about.
"""

from __future__ import annotations

import grpc

from clinic.v1 import common_pb2, frontdesk_pb2, frontdesk_pb2_grpc
from clinic_common import principal as principals
from clinic_common.errors import Unavailable

CALL_TIMEOUT_S = 3.0


class FrontDeskClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._frontdesk = frontdesk_pb2_grpc.FrontDeskServiceStub(channel)

    async def checked_in(self, booking: common_pb2.Booking, who: principals.Principal) -> bool:
        """True when the booking's visit is in its queue (whatever state the visit is in now)."""
        try:
            response = await self._frontdesk.GetQueue(
                frontdesk_pb2.GetQueueRequest(doctor_id=booking.doctor_id, date=booking.appointment_date),
                metadata=who.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as err:
            raise Unavailable(
                f"frontdesk_svc unavailable: {err.code().name} {err.details() or ''}".strip()
            ) from None
        return any(v.booking_id == booking.id for v in response.visits)
