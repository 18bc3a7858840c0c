"""Per-visitor token bucket: bursts, refill, isolation, a clear message and Retry-After seconds."""

from __future__ import annotations

import pytest

from app.errors import RateLimited
from app.services.rate_limit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_is_allowed_then_refused_with_seconds_to_wait() -> None:
    limiter = TokenBucketLimiter(per_minute=6, burst=3, clock=Clock())
    for _ in range(3):
        limiter.check("visitor")
    with pytest.raises(RateLimited) as refused:
        limiter.check("visitor")
    assert refused.value.retry_after == 10
    assert refused.value.message == "Too many prompts in a short time. Please wait 10 s before sending another one."


def test_tokens_refill_with_time() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(per_minute=6, burst=1, clock=clock)
    limiter.check("visitor")
    clock.now += 10
    limiter.check("visitor")
    clock.now += 5
    with pytest.raises(RateLimited) as refused:
        limiter.check("visitor")
    assert refused.value.retry_after == 5


def test_visitors_have_separate_buckets() -> None:
    limiter = TokenBucketLimiter(per_minute=1, burst=1, clock=Clock())
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_zero_per_minute_disables_the_limit() -> None:
    limiter = TokenBucketLimiter(per_minute=0, burst=1, clock=Clock())
    for _ in range(100):
        limiter.check("visitor")


def test_a_long_pause_does_not_save_more_than_the_burst() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(per_minute=60, burst=2, clock=clock)
    clock.now += 3600
    limiter.check("visitor")
    limiter.check("visitor")
    with pytest.raises(RateLimited):
        limiter.check("visitor")
