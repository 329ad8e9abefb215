"""How many watch streams one patient may hold open at once, counted where the streams are served.

The edge (Envoy) limits each caller's rate, not how many streams a caller keeps open; only the
service that serves a stream sees it end. The count is per notification_svc instance: with N
instances behind the gateway a patient may hold up to N times the cap. Staff and admin are not
capped (the front desk watches many patients).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from clinic_common import metrics
from clinic_common.errors import ResourceExhausted
from clinic_common.principal import Principal

DEFAULT_MAX_WATCH_STREAMS = 10


class OpenStreams:
    def __init__(self, per_patient: int = DEFAULT_MAX_WATCH_STREAMS) -> None:
        self._limit = per_patient
        self._open: Counter[str] = Counter()

    @contextmanager
    def hold(self, who: Principal) -> Iterator[None]:
        """One open stream for `who` while the block runs; RESOURCE_EXHAUSTED past the cap."""
        if who.is_staff or not self._limit:
            yield
            return
        if self._open[who.sub] >= self._limit:
            metrics.WATCH_STREAMS_REFUSED.inc()
            raise ResourceExhausted(
                f"at most {self._limit} open watch streams per caller; close one first", retry_after_s=1.0
            )
        self._open[who.sub] += 1
        try:
            yield
        finally:
            self._open[who.sub] -= 1
            if not self._open[who.sub]:
                del self._open[who.sub]

    def open_for(self, sub: str) -> int:
        return self._open.get(sub, 0)
