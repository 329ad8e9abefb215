"""Least privilege for the embedded servers: one NATS user and one Redis ACL user per service.

Each service may publish only the subjects it produces, consume only its own durable consumer and
touch only its own Redis keys. `ops` is the operators' (and tests') full-access user. Passwords are
random, kept in <data dir>/credentials.json (mode 0600) so restarts reuse them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from clinic_common import services
from clinic_common import subjects as s
from clinic_common.messaging import MAP, Messaging

SERVICES = services.NAMES  # one NATS user and one Redis user each
OPS = "ops"

_JS_COMMON = [
    "$JS.API.INFO",
    *[
        f"$JS.API.STREAM.{verb}.{stream}"
        for verb in ("CREATE", "UPDATE", "INFO")
        for stream in (
            s.EVENTS_STREAM,
            s.SAGA_STREAM,
            s.VISITS_STREAM,
            s.NOTIFY_STREAM,
            s.REMINDERS_STREAM,
            s.DLQ_STREAM,
        )
    ],
    f"$JS.API.STREAM.MSG.GET.{s.SAGA_STREAM}",
    f"{s.DLQ_SUBJECTS}",
]


def _consumer(stream: str, durable: str) -> list[str]:
    return [
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _advisory(stream: str, durable: str) -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}"


def _permissions(messaging: Messaging) -> dict[str, list[str]]:
    """What one service may publish and subscribe to: exactly its part of the messaging map."""
    if not messaging.uses_nats:
        return {"publish": [], "subscribe": []}
    direct = [f"$JS.API.DIRECT.GET.{stream}{tail}" for stream in messaging.reads for tail in ("", ".>")]
    purges = [f"$JS.API.STREAM.PURGE.{stream}" for stream in messaging.purges]
    return {
        "publish": [
            *messaging.produces,
            *direct,
            *purges,
            *_JS_COMMON,
            *(p for c in messaging.consumes for p in _consumer(c.stream, c.durable)),
        ],
        "subscribe": [
            "_INBOX.>",
            *messaging.hears,
            *(_advisory(c.stream, c.durable) for c in messaging.consumes),
        ],
    }


NATS_PERMISSIONS: dict[str, dict[str, list[str]]] = {
    name: _permissions(messaging) for name, messaging in MAP.items()
}

REDIS_KEYS: dict[str, list[str]] = {  # key patterns (read and write), or a selector such as %R~ (read only)
    # booking_svc: its own keys, and in the check-in queues (clinic_common/queues.py) a reschedule's
    # leaving mark and a read of who has checked in (one script: booking_svc/leaving_claim.lua)
    "booking_svc": [
        *("booking:*", "bookings:*", "outbox", "outbox:*"),
        *("{queue:*}:leaving:*", "%R~{queue:*}:visits"),
    ],
    "schedule_svc": ["{registry}:*", "{doctors}:*", "{places:*"],
    "discount_svc": ["{quota:*"],
    "notification_svc": ["notification:*", "notifications:*"],
    "frontdesk_svc": ["{queue:*", "frontdesk:*"],  # one hash tag per queue: {queue:<doctor|general>:<date>}
    "gateway": [],
    "fhir_svc": [],
}


@dataclass(frozen=True)
class Credentials:
    passwords: dict[str, str]

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Credentials:
        path = data_dir / "credentials.json"
        passwords = json.loads(path.read_text()) if path.exists() else {}
        missing = [user for user in (*SERVICES, OPS) if user not in passwords]
        if missing:  # a new data dir, or one from before a service was added
            passwords.update({user: secrets.token_urlsafe(18) for user in missing})
            data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(passwords))
            path.chmod(0o600)
        return cls(passwords)

    def nats_url(self, user: str, port: int) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{port}"

    def redis_url(self, user: str, port: int) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{port}/0"


def write_nats_config(creds: Credentials, path: Path) -> Path:
    users = [{"user": OPS, "password": creds.passwords[OPS]}]
    for user, perms in NATS_PERMISSIONS.items():
        users.append(
            {
                "user": user,
                "password": creds.passwords[user],
                "permissions": {
                    "publish": {"allow": perms["publish"] or ["_nothing_"]},
                    "subscribe": {"allow": perms["subscribe"] or ["_nothing_"]},
                    "allow_responses": True,
                },
            }
        )
    # NATS config accepts JSON syntax.
    path.write_text(json.dumps({"authorization": {"users": users}}, indent=1))
    path.chmod(0o600)
    return path


def write_redis_acl(creds: Credentials, path: Path) -> Path:
    lines = ["user default off", f"user {OPS} on >{creds.passwords[OPS]} ~* &* +@all"]
    for user, patterns in REDIS_KEYS.items():
        keys = " ".join(p if p.startswith("%") else f"~{p}" for p in patterns) or "resetkeys"
        lines.append(
            f"user {user} on >{creds.passwords[user]} {keys} "
            "-@all +@read +@write +@scripting +@connection +ping -@dangerous"
        )
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
