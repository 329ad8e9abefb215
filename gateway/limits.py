"""Per-caller limits at the gateway: a token-bucket rate limit and a cap on open watch streams."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from clinic_common.errors import ResourceExhausted, to_status
from clinic_common.principal import Principal


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Limits:
    """rate_per_s <= 0 disables the rate limit for that role."""

    patient_rate_per_s: float = 20.0
    admin_rate_per_s: float = 0.0
    burst: float = 40.0
    max_watches: int = 10
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _watches: dict[str, int] = field(default_factory=dict)

    def retry_after(self, who: Principal, now: float | None = None) -> float:
        """0 when the call may go ahead (and takes a token); else seconds until one is free."""
        rate = self.admin_rate_per_s if who.is_staff else self.patient_rate_per_s
        if rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(who.sub)
        if bucket is None:
            bucket = self._buckets[who.sub] = _Bucket(self.burst, now)
            if len(self._buckets) > 100_000:  # forget idle callers rather than grow without bound
                self._buckets = {who.sub: bucket}
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate

    def open_watch(self, who: Principal) -> bool:
        """Patients get at most max_watches open streams; the front desk and operators are not capped."""
        if who.is_staff:
            return True
        count = self._watches.get(who.sub, 0)
        if count >= self.max_watches:
            return False
        self._watches[who.sub] = count + 1
        return True

    def close_watch(self, who: Principal) -> None:
        if who.is_staff:
            return
        count = self._watches.get(who.sub, 1) - 1
        if count <= 0:
            self._watches.pop(who.sub, None)
        else:
            self._watches[who.sub] = count


def exhausted(message: str, retry_after_s: float = 0.0) -> grpc.Status:
    return to_status(ResourceExhausted(message, retry_after_s))
