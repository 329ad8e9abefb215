"""notification_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from clinic_common.config import (
    ConfigError,
    Connections,
    env_duration,
    env_int,
    env_str,
    env_timezone,
    listening,
    peer_addrs,
)
from clinic_common.services import get as service

from . import domain
from .limits import DEFAULT_MAX_WATCH_STREAMS

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)  # six attempts over about two minutes
MIN_ATTEMPTS = 5
FIRST_RETRY_WITHIN_S = 10.0


@dataclass(frozen=True)
class ChannelConfig:
    """Which channels are on, and where they go. Unconfigured channels are off."""

    smtp_url: str = ""  # smtp://[user:password@]host:port or smtps://...
    smtp_from: str = "clinic@localhost"
    sms_webhook_url: str = ""
    whatsapp_webhook_url: str = ""
    webhook_secret: str = ""
    dev_console: bool = False  # CLINIC_NOTIFY_DEV=1: print every message it would send

    @property
    def enabled(self) -> tuple[str, ...]:
        on = [domain.APP]
        if self.dev_console:
            on.append(domain.CONSOLE)
        if self.smtp_url:
            on.append(domain.EMAIL)
        if self.sms_webhook_url:
            on.append(domain.SMS)
        if self.whatsapp_webhook_url:
            on.append(domain.WHATSAPP)
        return tuple(on)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChannelConfig:
        smtp_url = env_str(env, "CLINIC_SMTP_URL", "")
        if smtp_url:
            parts = urlsplit(smtp_url)
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ConfigError(
                    f"CLINIC_SMTP_URL must be smtp://host:port or smtps://host:port, got {parts.scheme}://..."
                )
        hooks = {}
        for name in ("CLINIC_SMS_WEBHOOK_URL", "CLINIC_WHATSAPP_WEBHOOK_URL"):
            url = env_str(env, name, "")
            if url and urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"{name} must be an http:// or https:// URL")
            hooks[name] = url
        secret = env_str(env, "CLINIC_WEBHOOK_SECRET", "")
        if any(hooks.values()) and len(secret) < 16:
            raise ConfigError(
                "CLINIC_WEBHOOK_SECRET must be set (16 characters or more) when a webhook is configured"
            )
        dev = env_str(env, "CLINIC_NOTIFY_DEV", "0")
        if dev not in ("0", "1"):
            raise ConfigError("CLINIC_NOTIFY_DEV must be 0 or 1")
        return cls(
            smtp_url=smtp_url,
            smtp_from=env_str(env, "CLINIC_SMTP_FROM", "clinic@localhost"),
            sms_webhook_url=hooks["CLINIC_SMS_WEBHOOK_URL"],
            whatsapp_webhook_url=hooks["CLINIC_WHATSAPP_WEBHOOK_URL"],
            webhook_secret=secret,
            dev_console=dev == "1",
        )


@dataclass(frozen=True)
class NotificationConfig:
    addr: str
    connections: Connections
    metrics_addr: str = "off"
    max_watch_streams: int = DEFAULT_MAX_WATCH_STREAMS  # per patient per instance; 0: no cap
    channels: ChannelConfig = field(default_factory=ChannelConfig)
    reminders: tuple[str, ...] = ("24h", "2h")
    templates: dict[str, str] = field(default_factory=dict)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Kolkata"))
    # the registry and doctors (schedule_svc)
    schedule_addrs: tuple[str, ...] = (service("schedule_svc").default_addr,)
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S  # waits between a failed delivery's attempts
    confirm_by: timedelta | None = None  # CLINIC_CONFIRM_BY: the first reminder asks to confirm by then

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotificationConfig:
        env = os.environ if env is None else env
        try:
            reminders = domain.parse_durations(env_str(env, "CLINIC_REMINDERS", "24h,2h"))
        except ValueError as exc:
            raise ConfigError(f"CLINIC_REMINDERS: {exc}") from None
        return cls(
            **listening(env, "notification_svc"),
            backoff_s=_backoff(env_str(env, "CLINIC_NOTIFY_BACKOFF", "")),
            confirm_by=env_duration(env, "CLINIC_CONFIRM_BY", "1s")
            if env_str(env, "CLINIC_CONFIRM_BY", "")
            else None,
            max_watch_streams=env_int(env, "CLINIC_MAX_WATCH_STREAMS", DEFAULT_MAX_WATCH_STREAMS, minimum=0),
            channels=ChannelConfig.from_env(env),
            reminders=reminders,
            templates=load_templates(Path(env_str(env, "CLINIC_TEMPLATES_DIR", str(DEFAULT_TEMPLATES)))),
            timezone=env_timezone(env),
            schedule_addrs=peer_addrs(env, "schedule_svc"),
        )


def load_templates(directory: Path) -> dict[str, str]:
    """The shipped templates, overridden by any `<kind>.txt` in `directory`."""
    if not directory.is_dir():
        raise ConfigError(f"CLINIC_TEMPLATES_DIR: {directory} is not a directory")
    sources = {path.stem: path.read_text() for path in sorted(DEFAULT_TEMPLATES.glob("*.txt"))}
    sources.update({path.stem: path.read_text() for path in sorted(directory.glob("*.txt"))})
    try:
        domain.Templates(sources)
    except ValueError as exc:
        raise ConfigError(f"CLINIC_TEMPLATES_DIR: {exc}") from None
    return sources


def _backoff(text: str) -> tuple[float, ...]:
    """CLINIC_NOTIFY_BACKOFF: the waits between attempts (`2s,5s,15s,30s,60s`)."""
    if not text:
        return DEFAULT_BACKOFF_S
    try:
        waits = tuple(domain.parse_duration(item).total_seconds() for item in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"CLINIC_NOTIFY_BACKOFF: {exc}") from None
    if len(waits) + 1 < MIN_ATTEMPTS or waits[0] > FIRST_RETRY_WITHIN_S:
        raise ConfigError(
            f"CLINIC_NOTIFY_BACKOFF: at least {MIN_ATTEMPTS - 1} waits (so {MIN_ATTEMPTS} attempts), "
            f"the first at most {FIRST_RETRY_WITHIN_S:.0f}s"
        )
    return waits
