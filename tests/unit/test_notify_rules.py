"""notification_svc's pure rules: durations, channels and consent, reminder times, masking, texts."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clinic.v1 import common_pb2 as c
from clinic_common.config import ConfigError
from notification_svc import domain, sender
from notification_svc.channels import TIMEOUT_S, sign
from notification_svc.config import DEFAULT_TEMPLATES, ChannelConfig, NotificationConfig, load_templates

IST = ZoneInfo("Asia/Kolkata")


def test_durations_are_a_number_and_a_unit():
    assert domain.parse_duration("30s") == timedelta(seconds=30)
    assert domain.parse_duration("15m") == timedelta(minutes=15)
    assert domain.parse_duration("2h") == timedelta(hours=2)
    assert domain.parse_duration("1d") == timedelta(days=1)
    for bad in ("", "2", "h", "2 h", "-1h", "0s", "1w", "1.5h"):
        with pytest.raises(ValueError):
            domain.parse_duration(bad)
    assert domain.parse_durations("2h, 24h,2h") == ("24h", "2h")  # longest first, once each


def test_bad_settings_stop_the_process_naming_the_variable():
    with pytest.raises(ConfigError, match="CLINIC_REMINDERS"):
        NotificationConfig.from_env({"CLINIC_REMINDERS": "soon"})
    with pytest.raises(ConfigError, match="CLINIC_SMTP_URL"):
        ChannelConfig.from_env({"CLINIC_SMTP_URL": "http://mail"})
    with pytest.raises(ConfigError, match="CLINIC_WEBHOOK_SECRET"):
        ChannelConfig.from_env({"CLINIC_SMS_WEBHOOK_URL": "http://127.0.0.1:1/sms"})
    with pytest.raises(ConfigError, match="CLINIC_NOTIFY_BACKOFF"):
        NotificationConfig.from_env({"CLINIC_NOTIFY_BACKOFF": "1s,1s"})  # fewer than 5 attempts
    with pytest.raises(ConfigError, match="CLINIC_NOTIFY_BACKOFF"):
        NotificationConfig.from_env({"CLINIC_NOTIFY_BACKOFF": "11s,1s,1s,1s"})  # first retry after 10 s


def test_unconfigured_channels_are_off():
    assert ChannelConfig.from_env({}).enabled == ("app",)
    on = ChannelConfig.from_env(
        {
            "CLINIC_NOTIFY_DEV": "1",
            "CLINIC_SMTP_URL": "smtp://127.0.0.1:2525",
            "CLINIC_WHATSAPP_WEBHOOK_URL": "http://127.0.0.1:9/wa",
            "CLINIC_WEBHOOK_SECRET": "s" * 16,
        }
    )
    assert on.enabled == ("app", "console", "email", "whatsapp")


def test_nothing_goes_to_a_channel_the_patient_has_not_allowed():
    configured = ("app", "console", "email", "sms", "whatsapp")
    assert domain.channels_for(configured, None) == ["app", "console"]
    assert domain.channels_for(configured, c.ContactConsent()) == ["app", "console"]
    consent = c.ContactConsent(email=True, whatsapp=True)
    assert domain.channels_for(configured, consent) == ["app", "console", "email", "whatsapp"]
    assert domain.channels_for(("app",), consent) == ["app"]  # allowed but not run by the clinic


def test_reminders_count_down_to_the_time_or_the_doctors_day_start():
    timed = c.Appointment(date="2026-12-10", start_time="10:30")
    start = domain.appointment_start(timed, "09:00", IST)
    assert start == datetime(2026, 12, 10, 10, 30, tzinfo=IST)
    token_only = c.Appointment(date="2026-12-10", token=4)
    assert domain.appointment_start(token_only, "08:15", IST) == datetime(2026, 12, 10, 8, 15, tzinfo=IST)
    now = datetime(2026, 12, 9, 12, 0, tzinfo=IST)
    due = domain.reminder_times(start, ("1d", "2h"), now)
    assert due == {"reminder-1d": None, "reminder-2h": datetime(2026, 12, 10, 8, 30, tzinfo=IST)}


def test_idempotency_keys_name_booking_kind_event_and_channel():
    key = domain.idempotency_key("b1", "confirmed", 4, "sms")
    assert key == "b1:confirmed:4:sms"
    assert key != domain.idempotency_key("b1", "confirmed", 4, "whatsapp")
    assert key != domain.idempotency_key("b1", "rescheduled", 6, "sms")


def test_addresses_are_masked():
    assert domain.mask("email", "ravi.kumar@example.com") == "r***@example.com"
    assert domain.mask("sms", "+919876543210") == "+91******3210"
    assert "987654" not in domain.mask("whatsapp", "+919876543210")


def test_texts_carry_the_first_name_never_the_surname_or_other_phi():
    templates = domain.Templates(load_templates(DEFAULT_TEMPLATES))
    patient = c.Patient(id="p1", name="Kavya Menon", phone="+919876543210", email="kavya@example.com")
    appointment = c.Appointment(date="2026-12-10", start_time="10:30", reference="K7QX9M")
    for kind in ("confirmed", "cancelled", "rejected", "offered", "reminder-2h", "anything-else"):
        text = templates.render(kind, domain.text_values(patient, appointment, "Dr Rao"))
        whole = text.subject + text.body
        assert "Kavya" in whole
        for phi in ("Menon", "9876543210", "kavya@example.com"):
            assert phi not in whole
    confirmed = templates.render("confirmed", domain.text_values(patient, appointment, "Dr Rao"))
    assert "2026-12-10" in confirmed.subject and "10:30" in confirmed.body and "K7QX9M" in confirmed.body


def test_a_template_with_an_unknown_placeholder_is_refused(tmp_path):
    (tmp_path / "confirmed.txt").write_text("Hi $surname\nbody\n")
    with pytest.raises(ConfigError, match="surname"):
        load_templates(tmp_path)


def test_the_webhook_signature_is_hmac_sha256_over_the_raw_body():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_the_first_reminder_asks_to_confirm_by_the_deadline():
    templates = domain.Templates(load_templates(DEFAULT_TEMPLATES))
    values = domain.text_values(None, c.Appointment(date="2026-12-10", start_time="10:30"), "Dr Rao")
    values["confirm_by"] = "2026-12-10 06:30"
    asks = templates.render(domain.CONFIRM_TEMPLATE, values)
    assert "confirm" in asks.body and "2026-12-10 06:30" in asks.body
    plain = templates.render("reminder-2h", values)
    assert "06:30" not in plain.body


def test_the_send_claim_outlives_a_send_and_lapses_by_the_redelivery():
    """The claim's lease must cover a whole send (else a live holder's copy could send too) and run
    out no later than NATS redelivers a dead holder's message (else that redelivery is refused)."""
    spec = sender.consumer_spec((1.0, 2.0))
    assert TIMEOUT_S < sender.CLAIM_LEASE_S <= spec.ack_wait_s


def test_only_deliveries_that_use_the_patient_read_the_registry():
    assert not domain.reads_patient(domain.APP, "confirmed")  # the event's own message
    assert not domain.reads_patient(domain.APP, "cancelled")
    assert domain.reads_patient(domain.APP, "reminder-24h")  # a reminder's text is rendered
    for channel in (domain.CONSOLE, domain.EMAIL, domain.SMS, domain.WHATSAPP):
        assert domain.reads_patient(channel, "confirmed")  # consent, address, first name
