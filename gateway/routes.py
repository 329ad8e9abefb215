"""What the edge serves, as data: which backend answers each public service, and how.

Adding a public service is one line in SERVICES; its backend's address variable comes from
clinic_common.config.ADDR_VARS. A route whose backend is not configured is left out (the edge
answers UNIMPLEMENTED for it).
"""

from __future__ import annotations

SERVICES = {
    "clinic.v1.BookingService": "booking_svc",
    "clinic.v1.NotificationService": "notification_svc",
    "clinic.v1.AdminService": "discount_svc",
    "clinic.v1.PatientService": "schedule_svc",
    "clinic.v1.DoctorService": "schedule_svc",
    "clinic.v1.FrontDeskService": "frontdesk_svc",
}

# HTTP (not gRPC) services behind the edge, by path prefix: the same token checks, HTTP/1.1 upstream.
HTTP = {"/fhir/R4": "fhir_svc"}
# ...and the paths of theirs answered without a token (FHIR's CapabilityStatement is public).
HTTP_OPEN = ("/fhir/R4/metadata",)
# Single methods answered by another backend than their service's: the day's summary is computed
# where the bookings are (booking_svc), while the rest of AdminService (the quota) stays with discount_svc.
METHODS = {
    "/clinic.v1.AdminService/GetDaySummary": "booking_svc",
}

# Answered without a token, by one backend that knows every public proto (reflection cannot be
# merged across upstreams, envoyproxy/envoy#7631).
OPEN = {
    "grpc.health.v1.Health": "booking_svc",
    "grpc.reflection.v1.ServerReflection": "booking_svc",
    "grpc.reflection.v1alpha.ServerReflection": "booking_svc",
}

# Server streams that stay open as long as the caller wants: no route timeout, no idle timeout.
# A path ending in "/" covers every method of that service.
STREAMS = (
    "/clinic.v1.NotificationService/",
    "/clinic.v1.FrontDeskService/WatchQueue",
)

# Reads, safe to retry on another instance when one answers UNAVAILABLE or resets.
RETRYABLE = (
    "/clinic.v1.BookingService/ListServices",
    "/clinic.v1.BookingService/GetBooking",
    "/clinic.v1.BookingService/ListBookings",
    "/clinic.v1.AdminService/GetQuota",
    "/clinic.v1.NotificationService/WatchBooking",
    "/clinic.v1.NotificationService/WatchPatient",
    "/clinic.v1.FrontDeskService/GetQueue",
    "/clinic.v1.FrontDeskService/WatchQueue",
)
