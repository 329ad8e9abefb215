"""Real message receivers for tests: an SMTP server (aiosmtpd) that keeps every mail it accepted, and
a webhook provider (a local HTTP server) that checks the signature, fails some calls and counts what
it accepted per idempotency key. Used by the notification tests and the notification chaos run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from datetime import datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

from clinic.v1 import common_pb2 as c
from clinic.v1 import patient_pb2
from clinic_tools import embedded
from tests.harness import IST, Client, uid

SECRET = "webhook-secret-for-tests-0123456789"
ALWAYS_FAILS = "+919000000000"  # the webhook server answers 500 for this number, every time
FAILS_FIRST = 2  # and 503 for the first calls of every other key

# Tests that book appointments minutes ahead, on today's date: within an hour or two of midnight in
# India they would cross the doctor's day end or the date, so there the clinic keeps UTC's clock
# (16:30-20:30 then) instead of India's.
CLINIC_TZ = IST if datetime.now(IST).hour not in (22, 23, 0, 1) else ZoneInfo("Etc/UTC")


class Mailbox:
    """aiosmtpd handler: every message the SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list = []
        self.arrived: dict[str, list[float]] = {}  # idempotency key -> when each copy came (monotonic)

    async def handle_DATA(self, server, session, envelope):
        mail = message_from_bytes(envelope.content)
        self.messages.append(mail)
        self.arrived.setdefault(mail["Idempotency-Key"] or "", []).append(time.monotonic())
        return "250 OK"

    def by_key(self) -> Counter:
        """Mails accepted per idempotency key (the header every clinic mail carries)."""
        return Counter(m["Idempotency-Key"] for m in self.messages)

    def message_ids(self) -> dict[str, set[str]]:
        """The distinct Message-IDs per idempotency key: a mail client shows copies of one Message-ID
        as one message, so more than one here is a message the patient sees twice."""
        found: dict[str, set[str]] = {}
        for m in self.messages:
            found.setdefault(m["Idempotency-Key"] or "", set()).add(m["Message-ID"] or "")
        return found


def serve_mailbox(box: Mailbox) -> Controller:
    controller = Controller(box, hostname="127.0.0.1", port=embedded.free_port())
    controller.start()
    return controller


class Provider:
    """A webhook provider: checks the signature, fails some calls, counts what it accepted."""

    def __init__(self, fails_first: int = FAILS_FIRST) -> None:
        self.fails_first = fails_first
        self.calls: Counter = Counter()  # idempotency key -> calls
        self.accepted: dict[str, dict] = {}  # idempotency key -> body (first accepted)
        self.accepted_calls: Counter = Counter()
        self.accepted_at: dict[str, list[float]] = {}  # idempotency key -> when each was accepted
        self.bad_signatures = 0
        self.cut_short = 0  # requests whose body ended before its Content-Length (the sender died)
        self.lock = threading.Lock()

    def answer(self, key: str, body: bytes, signature: str) -> int:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with self.lock:
            if not hmac.compare_digest(expected, signature):
                self.bad_signatures += 1
                return 401
            self.calls[key] += 1
            payload = json.loads(body)
            if payload["to"] == ALWAYS_FAILS:
                return 500
            if self.calls[key] <= self.fails_first:
                return 503
            self.accepted_calls[key] += 1
            self.accepted_at.setdefault(key, []).append(time.monotonic())
            self.accepted.setdefault(key, payload)
            return 200


def serve_provider(provider: Provider) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if len(body) < length:  # a sender killed mid-request: nothing to sign-check or answer
                with provider.lock:
                    provider.cut_short += 1
                return
            status = provider.answer(
                self.headers.get("Idempotency-Key", ""), body, self.headers.get("X-Clinic-Signature", "")
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", embedded.free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def channel_env(smtp_port: int, hook_port: int) -> dict[str, str]:
    """notification_svc's settings for these receivers: e-mail, SMS and WhatsApp on."""
    return {
        "CLINIC_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "CLINIC_SMS_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/sms",
        "CLINIC_WHATSAPP_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/whatsapp",
        "CLINIC_WEBHOOK_SECRET": SECRET,
    }


def _phone() -> str:
    return "+9198" + uid("")[-8:].translate(str.maketrans("abcdef", "123456"))


async def register(api: Client, name: str, phone: str = "", **consent) -> c.Patient:
    req = patient_pb2.RegisterPatientRequest(
        name=name,
        phone=phone or _phone(),
        email=f"{uid('p')}@example.com",
        gender=c.GENDER_FEMALE,
        date_of_birth="1990-04-04",
        contact=c.ContactConsent(**consent),
    )
    return (await api.patients.RegisterPatient(req, metadata=Client.auth("desk", "staff"))).patient
