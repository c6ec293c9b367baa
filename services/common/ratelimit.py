"""Per-key rate limits: one token bucket per API key and server.

A key at ``rate`` calls per second holds at most ``rate x burst_seconds`` tokens; each call
takes one. An empty bucket refuses the call and says how long until a token is back, which
the interceptor sends as RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo``. The limit is
per server process (no shared counter in Redis): with N replicas a key gets up to N times
the rate, which is the usual trade for not adding a Redis round trip to every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API key id.

    Args:
        burst_seconds: How many seconds of its rate a key may spend at once.
        clock: Monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, burst_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_seconds = burst_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str, rate: float) -> float:
        """Takes one call from ``key``'s bucket.

        Args:
            key: The API key id.
            rate: Calls per second allowed for it; 0 means unlimited.

        Returns:
            0.0 when the call may go ahead, else the seconds until it would be allowed.
        """
        if rate <= 0:
            return 0.0
        capacity = max(1.0, rate * self.burst_seconds)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate
