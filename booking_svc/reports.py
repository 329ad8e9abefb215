"""The day's figures from its bookings: a pure function over the stored records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from clinic.v1 import admin_pb2, common_pb2, saga_pb2
from clinic_common.money import money

from .payments import totals

S = common_pb2


def _attendance(b: common_pb2.Booking) -> str:
    """SEEN / NO_SHOW / ... once bookings carry `attendance` (another change adds it); "" until then."""
    field = b.DESCRIPTOR.fields_by_name.get("attendance")
    if field is None or field.enum_type is None:
        return ""
    return field.enum_type.values_by_number[b.attendance].name.removeprefix("ATTENDANCE_")


def day_summary(
    day: str,
    records: Iterable[saga_pb2.BookingRecord],
    currency: str,
    capacities: Mapping[str, int],
) -> admin_pb2.DaySummary:
    by_status: Counter[int] = Counter()
    paid = refunded = due = discounts = discount_amount = 0
    seen = no_shows = cancellations = late = 0
    doctors: dict[str, admin_pb2.DoctorDaySummary] = {}
    count = 0
    for record in records:
        b = record.booking
        if b.appointment_date != day:
            continue
        count += 1
        by_status[b.status] += 1
        p, r = totals(b)
        paid += p
        refunded += r
        due += b.payment.refund_due.amount_minor
        if b.discount.outcome == S.DISCOUNT_OUTCOME_APPLIED:
            discounts += 1
            discount_amount += b.discount.amount.amount_minor
        if b.status == S.BOOKING_STATUS_CANCELLED:
            cancellations += 1
            late += record.late_cancellation
        attendance = _attendance(b)
        seen += attendance == "SEEN"
        no_shows += attendance == "NO_SHOW"
        if b.doctor_id:
            d = doctors.setdefault(
                b.doctor_id,
                admin_pb2.DoctorDaySummary(doctor_id=b.doctor_id, capacity=capacities.get(b.doctor_id, 0)),
            )
            d.booked += b.status == S.BOOKING_STATUS_CONFIRMED
            d.seen += attendance == "SEEN"
    for doctor_id, capacity in capacities.items():
        doctors.setdefault(doctor_id, admin_pb2.DoctorDaySummary(doctor_id=doctor_id, capacity=capacity))
    return admin_pb2.DaySummary(
        date=day,
        bookings=count,
        by_status=[admin_pb2.StatusCount(status=s, count=n) for s, n in sorted(by_status.items())],
        seen=seen,
        no_shows=no_shows,
        cancellations=cancellations,
        late_cancellations=late,
        payments=money(paid, currency),
        refunds=money(refunded, currency),
        net=money(paid - refunded, currency),
        discounts=discounts,
        discount_amount=money(discount_amount, currency),
        doctors=[doctors[k] for k in sorted(doctors)],
        refund_due=money(due, currency),
    )
