"""Per-key token buckets."""

from __future__ import annotations

import pytest

from services.common.ratelimit import RateLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_may_spend_its_burst_then_waits_for_the_refill():
    clock = _Clock()
    limiter = RateLimiter(burst_seconds=2.0, clock=clock)
    assert all(limiter.acquire("k", rate=5) == 0.0 for _ in range(10))
    wait = limiter.acquire("k", rate=5)
    assert wait == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.acquire("k", rate=5) == 0.0
    assert limiter.acquire("k", rate=5) > 0


def test_keys_have_separate_buckets_and_rate_zero_is_unlimited():
    limiter = RateLimiter(burst_seconds=1.0, clock=_Clock())
    assert limiter.acquire("a", rate=1) == 0.0
    assert limiter.acquire("a", rate=1) > 0
    assert limiter.acquire("b", rate=1) == 0.0
    assert all(limiter.acquire("internal", rate=0) == 0.0 for _ in range(10_000))


def test_a_slow_rate_still_allows_one_call():
    limiter = RateLimiter(burst_seconds=0.1, clock=_Clock())
    assert limiter.acquire("k", rate=0.5) == 0.0
    assert limiter.acquire("k", rate=0.5) == pytest.approx(2.0)
