"""Where a check-in queue lives in Redis, for the two services that meet there.

A queue is frontdesk_svc's: every key under its hash tag `{queue:<doctor_id|general>:<date>}` is
written by frontdesk_svc's scripts, except one kind. A reschedule of a booking takes
`<tag>:leaving:<booking_id>` in the queue the booking is leaving (booking_svc writes it, and reads
`<tag>:visits` in the same script to see whether the patient has checked in); frontdesk_svc's check-in
script reads it and refuses while it stands. One slot, one script each side: a check-in and a
reschedule of the same booking cannot both win. The Redis ACL gives booking_svc exactly those keys.
"""

from __future__ import annotations

from .subjects import queue_token


def queue_tag(doctor_id: str, day: str) -> str:
    return f"{{queue:{queue_token(doctor_id)}:{day}}}"


def visits_key(tag: str) -> str:
    return f"{tag}:visits"


def leaving_key(tag: str, booking_id: str) -> str:
    return f"{tag}:leaving:{booking_id}"
