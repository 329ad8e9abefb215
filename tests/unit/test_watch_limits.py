"""notification_svc's per-patient cap on open watch streams (pure counting)."""

from __future__ import annotations

import pytest

from clinic_common.errors import ResourceExhausted
from clinic_common.principal import Principal
from notification_svc.limits import OpenStreams


def test_a_patient_holds_at_most_the_cap_and_a_closed_stream_makes_room():
    streams = OpenStreams(2)
    alice, bob = Principal(sub="alice", role="patient"), Principal(sub="bob", role="patient")
    with streams.hold(alice), streams.hold(alice):
        with pytest.raises(ResourceExhausted, match="at most 2 open watch streams"):
            with streams.hold(alice):
                pass
        with streams.hold(bob):  # another patient has a cap of their own
            assert streams.open_for("bob") == 1
        assert streams.open_for("alice") == 2
    assert streams.open_for("alice") == 0
    with streams.hold(alice):  # room again
        pass


def test_a_stream_that_fails_still_gives_its_place_back():
    streams = OpenStreams(1)
    alice = Principal(sub="alice", role="patient")
    with pytest.raises(RuntimeError):
        with streams.hold(alice):
            raise RuntimeError("the watch ended with an error")
    assert streams.open_for("alice") == 0


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_and_admin_are_not_capped(role):
    streams = OpenStreams(1)
    desk = Principal(sub="desk", role=role)
    with streams.hold(desk), streams.hold(desk), streams.hold(desk):
        assert streams.open_for("desk") == 0


def test_zero_turns_the_cap_off():
    streams = OpenStreams(0)
    alice = Principal(sub="alice", role="patient")
    with streams.hold(alice), streams.hold(alice):
        pass
