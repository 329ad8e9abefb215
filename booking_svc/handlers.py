"""clinic.v1.BookingService: thin gRPC handlers over the Bookings use cases."""

from __future__ import annotations

from clinic.v1 import admin_pb2, admin_pb2_grpc, booking_pb2, booking_pb2_grpc
from clinic_common import rpc

from .saga import Bookings


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

    @rpc.for_booking
    async def CancelBooking(self, request, context, who):
        booking = await self._bookings.cancel(request.booking_id, request.reason, who)
        return booking_pb2.CancelBookingResponse(booking=booking)

    @rpc.for_booking
    async def AcceptOffer(self, request, context, who):
        booking = await self._bookings.accept_offer(request.booking_id, who)
        return booking_pb2.AcceptOfferResponse(booking=booking)

    @rpc.for_booking
    async def RecordPayment(self, request, context, who):
        booking = await self._bookings.record_payment(request, who)
        return booking_pb2.RecordPaymentResponse(booking=booking)

    @rpc.for_booking
    async def RefundPayment(self, request, context, who):
        booking = await self._bookings.refund_payment(request, who)
        return booking_pb2.RefundPaymentResponse(booking=booking)

    @rpc.for_booking
    async def RescheduleBooking(self, request, context, who):
        booking = await self._bookings.reschedule(request, who)
        return booking_pb2.RescheduleBookingResponse(booking=booking)

    @rpc.for_booking
    async def UpdateBookingNote(self, request, context, who):
        booking = await self._bookings.update_note(request.booking_id, request.note, who)
        return booking_pb2.UpdateBookingNoteResponse(booking=booking)

    @rpc.for_booking
    async def ConfirmAttendance(self, request, context, who):
        booking = await self._bookings.confirm_attendance(request.booking_id, who)
        return booking_pb2.ConfirmAttendanceResponse(booking=booking)


class DaySummaryServicer(admin_pb2_grpc.AdminServiceServicer):
    """AdminService.GetDaySummary only: the figures come from the bookings, which booking_svc holds
    (the gateway routes this one method here; the quota methods stay with discount_svc)."""

    def __init__(self, bookings: Bookings) -> None:
        self._bookings = bookings

    @rpc.unary
    async def GetDaySummary(self, request, context, who):
        return admin_pb2.GetDaySummaryResponse(summary=await self._bookings.day_summary(request.date, who))
