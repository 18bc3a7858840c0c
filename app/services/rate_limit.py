"""Per-visitor rate limit: a token bucket per owner key, kept in process memory.

Each visitor may send ``RATE_LIMIT_BURST`` prompts at once and then ``RATE_LIMIT_PER_MINUTE`` per
minute. A refused prompt raises ``RateLimited`` with the whole seconds until the next one is allowed
(the views answer 429 with ``Retry-After``). In-process state means each server process counts on its
own: with N worker processes a visitor gets up to N times the rate (documented in the README).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from app.errors import RATE_LIMITED, RateLimited

logger = logging.getLogger(__name__)

MAX_TRACKED_VISITORS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """``per_minute`` refills per minute, up to ``burst`` saved; ``per_minute == 0`` disables the limit."""

    def __init__(self, *, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise ``RateLimited``."""
        if not self.enabled:
            return
        rate = self.per_minute / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_TRACKED_VISITORS:
                    self._forget_full_buckets(now, rate)
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = math.ceil((1.0 - bucket.tokens) / rate)
        logger.info("Rate limit reached for visitor %s…; retry in %d s", key[:8], wait)
        raise RateLimited(RATE_LIMITED.format(seconds=wait), retry_after=max(1, wait))

    def _forget_full_buckets(self, now: float, rate: float) -> None:
        """Drop visitors whose bucket has refilled (they are indistinguishable from new ones)."""
        full = [key for key, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= self.burst]
        for key in full:
            del self._buckets[key]


_limiter: TokenBucketLimiter | None = None
_limiter_lock = threading.Lock()


def get_limiter() -> TokenBucketLimiter:
    """The process-wide limiter for the current settings (rebuilt when they change, e.g. in tests)."""
    global _limiter

    per_minute, burst = settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST
    with _limiter_lock:
        if _limiter is None or (_limiter.per_minute, _limiter.burst) != (per_minute, max(1, burst)):
            _limiter = TokenBucketLimiter(per_minute=per_minute, burst=burst)
        return _limiter


def check_rate_limit(owner: str) -> None:
    """Count one prompt for this visitor (``Scope.owner``) or raise ``RateLimited``."""
    get_limiter().check(owner)


def reset_rate_limits() -> None:
    """Forget every bucket (tests)."""
    global _limiter
    with _limiter_lock:
        _limiter = None
