"""Per-visitor rate limit: one limit for every worker process, counted in MongoDB.

Each visitor may send ``RATE_LIMIT_BURST`` prompts at once and then ``RATE_LIMIT_PER_MINUTE`` per
minute. A refused prompt raises ``RateLimited`` with the whole seconds until the next one is allowed
(the views answer 429 with ``Retry-After``).

The count lives in the ``<collection>_rate`` collection, one document per visitor, so N worker processes
(on one machine or many) enforce one limit. It is a token bucket written as GCRA: the document holds the
visitor's "theoretical arrival time" ``tat``; a prompt is allowed while ``tat - now`` stays within the
burst, and each allowed prompt moves ``tat`` one interval (60 / per_minute s) on, in one atomic
``update_one`` (an upsert that fails on the unique ``_id`` while the visitor is over the limit). A TTL
index drops the document once the allowance is full again.

While the store cannot be reached, each process counts in its own memory (``TokenBucketLimiter``) and
logs once that it does; it asks the store again after ``STORE_RETRY_SECONDS``. The request queue and its
429 (``QueueFull``) stay per process on purpose: they measure one machine's capacity.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from app.errors import RATE_LIMITED, RATE_LIMITED_BURST, RateLimited
from app.services.mongo_indexes import RATE_SUFFIX
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)

MAX_TRACKED_VISITORS = 100_000
# After a failed store call, count in this process for this long before asking the store again
# (a prompt must not wait for the store's selection timeout every time while it is down).
STORE_RETRY_SECONDS = 5.0


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

    def check(self, key: str, cost: int = 1) -> None:
        """Take ``cost`` tokens for ``key`` (all or none) or raise ``RateLimited``."""
        if not self.enabled or cost <= 0:
            return
        _check_cost(key, cost, self.burst)
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
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return
            wait = math.ceil((cost - bucket.tokens) / rate)
        raise _refused(key, wait)

    def _forget_full_buckets(self, now: float, rate: float) -> None:
        """Drop visitors whose bucket has refilled (they are indistinguishable from new ones)."""
        full = [key for key, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= self.burst]
        for key in full:
            del self._buckets[key]


def _check_cost(key: str, cost: int, burst: int) -> None:
    """More prompts at once than the burst allows can never pass: say so instead of "wait"."""
    if cost > burst:
        logger.info("Rate limit: visitor %s… asked for %d prompts at once (burst %d)", key[:8], cost, burst)
        raise RateLimited(RATE_LIMITED_BURST.format(count=cost, burst=burst), retry_after=60)


def _refused(key: str, wait: int) -> RateLimited:
    logger.info("Rate limit reached for visitor %s…; retry in %d s", key[:8], wait)
    return RateLimited(RATE_LIMITED.format(seconds=wait), retry_after=max(1, wait))


CollectionFactory = Callable[[], Collection[dict[str, Any]]]


class SharedRateLimiter:
    """The same token bucket, kept in MongoDB so every process shares it; local while the store is down."""

    def __init__(
        self,
        *,
        per_minute: int,
        burst: int,
        collection: CollectionFactory,
        clock: Callable[[], float] = time.time,
        retry_seconds: float = STORE_RETRY_SECONDS,
    ) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self.local = TokenBucketLimiter(per_minute=per_minute, burst=burst)
        self._collection = collection
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._local_until = 0.0
        self._counting_locally = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    @property
    def counting_locally(self) -> bool:
        """True while the store is unreachable and this process counts on its own."""
        return self._counting_locally

    def check(self, key: str, cost: int = 1) -> None:
        """Take ``cost`` prompts of ``key``'s allowance (all or none) or raise ``RateLimited``."""
        if not self.enabled or cost <= 0:
            return
        _check_cost(key, cost, self.burst)
        if time.monotonic() < self._local_until:
            self.local.check(key, cost)
            return
        try:
            self._check_shared(key, cost)
        except PyMongoError as exc:
            self._fall_back(exc)
            self.local.check(key, cost)
            return
        if self._counting_locally:
            with self._lock:
                back, self._counting_locally = self._counting_locally, False
            if back:
                logger.info("Rate limit counted in MongoDB again (shared by every worker)")

    def _check_shared(self, key: str, cost: int = 1) -> None:
        interval = 60.0 / self.per_minute
        # ``cost`` prompts fit while the last of them would still be within the burst.
        tolerance = (self.burst - cost) * interval
        horizon = self.burst * interval  # when the allowance is full again, at the latest
        collection = self._collection()
        for _attempt in range(2):
            now = self._clock()
            try:
                collection.update_one(
                    {"_id": key, "tat": {"$lte": now + tolerance}},
                    [
                        {
                            "$set": {
                                "tat": {"$add": [{"$max": ["$tat", now]}, cost * interval]},
                                "expires_at": {"$literal": datetime.fromtimestamp(now + horizon, UTC)},
                            }
                        }
                    ],
                    upsert=True,
                )
                return
            except DuplicateKeyError:
                # The visitor's document exists and is over the limit (or another process created it first).
                doc = collection.find_one({"_id": key}, {"tat": 1})
                ahead = (float(doc["tat"]) if doc is not None else now) - self._clock()
                if ahead > tolerance:
                    raise _refused(key, math.ceil(ahead - tolerance)) from None
        raise _refused(key, 1)

    def _fall_back(self, exc: PyMongoError) -> None:
        with self._lock:
            self._local_until = time.monotonic() + self._retry_seconds
            first = not self._counting_locally
            self._counting_locally = True
        if first:
            logger.warning(
                "Rate limit: the store is unreachable (%s); this process counts visitors on its own until it "
                "is back, so N workers allow up to N times the limit meanwhile",
                exc.__class__.__name__,
            )


def _rate_collection() -> Collection[dict[str, Any]]:
    return get_repository().sibling(RATE_SUFFIX)


_limiter: SharedRateLimiter | None = None
_limiter_lock = threading.Lock()


def get_limiter() -> SharedRateLimiter:
    """The process-wide limiter for the current settings (rebuilt when they change, e.g. in tests)."""
    global _limiter

    per_minute, burst = settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST
    with _limiter_lock:
        if _limiter is None or (_limiter.per_minute, _limiter.burst) != (per_minute, max(1, burst)):
            _limiter = SharedRateLimiter(per_minute=per_minute, burst=burst, collection=_rate_collection)
        return _limiter


def check_rate_limit(owner: str, *, prompts: int = 1) -> None:
    """Count ``prompts`` prompts for this visitor (``Scope.owner``), all or none, or raise ``RateLimited``.

    A comparison of N models counts N at once (``prompts=0`` counts nothing: already counted).
    """
    get_limiter().check(owner, prompts)


def reset_rate_limits() -> None:
    """Forget this process's limiter (tests); the shared counts stay in the store."""
    global _limiter
    with _limiter_lock:
        _limiter = None
