"""Book a service and watch the saga decide, using only the clinic-api stubs.

CLINIC_GATEWAY_ADDR=127.0.0.1:50051 CLINIC_TOKEN=... python examples/book_and_watch.py p-123
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc

from clinic.v1 import booking_pb2, booking_pb2_grpc, common_pb2, notification_pb2, notification_pb2_grpc


async def book_and_watch(addr: str, token: str, patient_id: str) -> common_pb2.Booking:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(addr) as channel:
        bookings = booking_pb2_grpc.BookingServiceStub(channel)
        notifications = notification_pb2_grpc.NotificationServiceStub(channel)
        request = booking_pb2.CreateBookingRequest(
            patient=common_pb2.Patient(
                id=patient_id,
                name="Example Patient",
                gender=common_pb2.GENDER_OTHER,
                date_of_birth="1984-05-06",
            ),
            service_ids=["gen-consult"],
            request_id=f"example-{patient_id}",
        )
        created = await bookings.CreateBooking(request, metadata=metadata, timeout=10)
        print(f"booking {created.booking.id}: {common_pb2.BookingStatus.Name(created.booking.status)}")
        watch = notification_pb2.WatchBookingRequest(booking_id=created.booking.id)
        async for update in notifications.WatchBooking(watch, metadata=metadata, timeout=30):
            event = update.event
            print(f"  {event.sequence}. {common_pb2.EventType.Name(event.type)}: {event.message}")
        final = await bookings.GetBooking(
            booking_pb2.GetBookingRequest(booking_id=created.booking.id), metadata=metadata, timeout=10
        )
        return final.booking


def main() -> int:
    addr = os.environ.get("CLINIC_GATEWAY_ADDR", "127.0.0.1:50051")
    booking = asyncio.run(
        book_and_watch(addr, os.environ["CLINIC_TOKEN"], sys.argv[1] if len(sys.argv) > 1 else "p-123")
    )
    price = booking.final_price.amount_minor
    print(f"{common_pb2.BookingStatus.Name(booking.status)}, final price ₹{price // 100}.{price % 100:02d}")
    return 0 if booking.status == common_pb2.BOOKING_STATUS_CONFIRMED else 1


if __name__ == "__main__":
    sys.exit(main())
