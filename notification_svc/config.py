"""notification_svc configuration, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from clinic_common.config import Connections, env_int, listening

from .limits import DEFAULT_MAX_WATCH_STREAMS


@dataclass(frozen=True)
class NotificationConfig:
    addr: str
    connections: Connections
    metrics_addr: str = "off"
    max_watch_streams: int = DEFAULT_MAX_WATCH_STREAMS  # per patient per instance; 0: no cap

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotificationConfig:
        env = os.environ if env is None else env
        return cls(
            **listening(env, "notification_svc"),
            max_watch_streams=env_int(env, "CLINIC_MAX_WATCH_STREAMS", DEFAULT_MAX_WATCH_STREAMS, minimum=0),
        )
