"""The ways a message leaves the clinic: SMTP for e-mail, a signed webhook for SMS and WhatsApp,
and in dev mode the console. Each `send` returns once the provider accepted the message and raises
`DeliveryFailed` otherwise (the sender retries). No address or text is ever put in an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import unquote, urlsplit

from . import domain

TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-Clinic-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryFailed(Exception):
    """The provider did not accept the message (yet); the reason names no address."""


@dataclass(frozen=True)
class Outgoing:
    booking_id: str
    kind: str
    channel: str
    to: str
    text: domain.Text
    idempotency_key: str


class Channel(Protocol):
    async def send(self, message: Outgoing) -> None: ...


def sign(secret: str, body: bytes) -> str:
    """The X-Clinic-Signature value: HMAC-SHA256 over the raw body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(message: Outgoing) -> bytes:
    return json.dumps(
        {
            "idempotency_key": message.idempotency_key,
            "channel": message.channel,
            "to": message.to,
            "text": message.text.body,
            "booking_id": message.booking_id,
            "kind": message.kind,
        },
        separators=(",", ":"),
    ).encode()


class WebhookChannel:
    """A JSON POST to the provider's adapter; any 2xx is delivered."""

    def __init__(self, url: str, secret: str) -> None:
        self._url = url
        self._secret = secret

    async def send(self, message: Outgoing) -> None:
        await asyncio.to_thread(self._post, message)

    def _post(self, message: Outgoing) -> None:
        body = webhook_body(message)
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body),
                IDEMPOTENCY_HEADER: message.idempotency_key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            raise DeliveryFailed(f"webhook answered HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            raise DeliveryFailed(f"webhook unreachable: {type(err).__name__}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"webhook answered HTTP {status}")


class EmailChannel:
    """SMTP (STARTTLS when the server offers it) or SMTPS, with an optional login in the URL."""

    def __init__(self, url: str, sender: str) -> None:
        self._url = urlsplit(url)
        self._sender = sender

    async def send(self, message: Outgoing) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: Outgoing) -> None:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.to
        mail["Subject"] = message.text.subject
        mail["Date"] = formatdate(localtime=False)
        # The same message always has the same Message-ID: a receiving system can drop a copy.
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@clinic.notify>"
        mail[IDEMPOTENCY_HEADER] = message.idempotency_key
        mail.set_content(message.text.body)
        url = self._url
        try:
            if url.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=TIMEOUT_S)
            else:
                smtp = smtplib.SMTP(url.hostname, url.port or 25, timeout=TIMEOUT_S)
            with smtp:
                smtp.ehlo()
                if url.scheme == "smtp" and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if url.username:
                    smtp.login(unquote(url.username), unquote(url.password or ""))
                smtp.send_message(mail)
        except smtplib.SMTPResponseException as err:
            raise DeliveryFailed(f"SMTP server answered {err.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryFailed(f"SMTP failed: {type(err).__name__}") from None


class ConsoleChannel:
    """Dev mode: prints what would be sent (addresses masked) so a newcomer sees it on screen."""

    async def send(self, message: Outgoing) -> None:
        sys.stdout.write(
            f"\n--- notification ({message.kind}, booking {message.booking_id}) ---\n"
            f"Subject: {message.text.subject}\n{message.text.body}---\n"
        )
        sys.stdout.flush()
