"""clinic.v1.BookingService: thin gRPC handlers over the Bookings use cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from clinic.v1 import admin_pb2, admin_pb2_grpc, booking_pb2, booking_pb2_grpc, common_pb2
from clinic_common import rpc
from clinic_common.principal import Principal

from .saga import Bookings


class _ChangesOneBooking:
    """A BookingService method over one booking: `rpc.for_booking` (its id bound to the logs) around
    `call(bookings, request, who)`, whose booking it answers in `<Method>Response(booking=...)`."""

    def __init__(self, call: Callable[[Bookings, Any, Principal], Awaitable[common_pb2.Booking]]) -> None:
        self._call = call

    def __set_name__(self, owner: type, name: str) -> None:
        response, call = getattr(booking_pb2, f"{name}Response"), self._call

        async def method(servicer, request, context, who):
            return response(booking=await call(servicer._bookings, request, who))

        method.__name__ = name
        method.__qualname__ = f"{owner.__name__}.{name}"
        setattr(owner, name, rpc.for_booking(method))


class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    def __init__(self, bookings: Bookings) -> None:
        self._bookings = bookings

    @rpc.unary
    async def ListServices(self, request, context, who):
        return booking_pb2.ListServicesResponse(services=self._bookings.list_services(request.gender))

    @rpc.unary
    async def CreateBooking(self, request, context, who):
        booking = await self._bookings.create(request, who)
        return booking_pb2.CreateBookingResponse(booking=booking)

    @rpc.for_booking
    async def GetBooking(self, request, context, who):
        return booking_pb2.GetBookingResponse(booking=await self._bookings.get(request.booking_id, who))

    @rpc.unary
    async def ListBookings(self, request, context, who):
        bookings, token = await self._bookings.list(request, who)
        return booking_pb2.ListBookingsResponse(bookings=bookings, next_page_token=token)

    # The methods that change one booking and answer it: <Method>Response(booking=...).
    CancelBooking = _ChangesOneBooking(lambda b, r, who: b.cancel(r.booking_id, r.reason, who))
    AcceptOffer = _ChangesOneBooking(lambda b, r, who: b.accept_offer(r.booking_id, who))
    RecordPayment = _ChangesOneBooking(lambda b, r, who: b.record_payment(r, who))
    RefundPayment = _ChangesOneBooking(lambda b, r, who: b.refund_payment(r, who))
    RescheduleBooking = _ChangesOneBooking(lambda b, r, who: b.reschedule(r, who))
    UpdateBookingNote = _ChangesOneBooking(lambda b, r, who: b.update_note(r.booking_id, r.note, who))
    ConfirmAttendance = _ChangesOneBooking(lambda b, r, who: b.confirm_attendance(r.booking_id, who))


class DaySummaryServicer(admin_pb2_grpc.AdminServiceServicer):
    """AdminService.GetDaySummary only: the figures come from the bookings, which booking_svc holds
    (the gateway routes this one method here; the quota methods stay with discount_svc)."""

    def __init__(self, bookings: Bookings) -> None:
        self._bookings = bookings

    @rpc.unary
    async def GetDaySummary(self, request, context, who):
        return admin_pb2.GetDaySummaryResponse(summary=await self._bookings.day_summary(request.date, who))
