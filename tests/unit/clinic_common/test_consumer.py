"""clinic_common.consumer's one subject/payload check: a saga payload names its subject's booking."""

from __future__ import annotations

import pytest

from clinic.v1 import saga_pb2
from clinic_common.consumer import Poison, decode, same_booking


def test_a_payload_for_the_subjects_booking_is_decoded():
    data = saga_pb2.PlacesAccept(booking_id="b-1", appointment_date="2026-03-10").SerializeToString()
    assert decode(saga_pb2.PlacesAccept, data, "b-1").appointment_date == "2026-03-10"


@pytest.mark.parametrize("payload_id", ["b-2", ""])
def test_a_payload_for_another_or_no_booking_is_poison(payload_id):
    data = saga_pb2.PlacesAccept(booking_id=payload_id).SerializeToString()
    with pytest.raises(Poison, match="does not match the subject"):
        decode(saga_pb2.PlacesAccept, data, "b-1")
    with pytest.raises(Poison):
        same_booking(payload_id, "b-1")
    with pytest.raises(Poison):
        same_booking(payload_id, "")  # an empty subject id matches nothing, not even an empty payload id
