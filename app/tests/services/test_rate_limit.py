"""Per-visitor token bucket: bursts, refill, isolation, a clear message and Retry-After seconds.

The shared limiter keeps the same bucket in MongoDB, so two clients or two processes on one store
enforce one limit; while the store is down each process counts for itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings

from app.errors import RateLimited
from app.services.local_store import free_port
from app.services.mongo_indexes import RATE_SUFFIX
from app.services.mongo_repo import InteractionRepository
from app.services.rate_limit import SharedRateLimiter, TokenBucketLimiter


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


# --- one limit for every worker: counted in MongoDB ------------------------------------------------

TWO_PROCESSES_SCRIPT = """
import sys
import django
django.setup()
from app.errors import RateLimited
from app.services.mongo_repo import RATE_SUFFIX, InteractionRepository
from app.services.rate_limit import SharedRateLimiter
uri, db = sys.argv[1], sys.argv[2]
repo = InteractionRepository(uri=uri, db_name=db, collection_name="interactions")
limiter = SharedRateLimiter(per_minute=1, burst=5, collection=lambda: repo.sibling(RATE_SUFFIX))
allowed = 0
for _ in range(10):
    try:
        limiter.check("shared-visitor")
        allowed += 1
    except RateLimited:
        pass
print(allowed)
"""


def shared(repo: InteractionRepository, *, per_minute: int, burst: int, **kwargs: Any) -> SharedRateLimiter:
    return SharedRateLimiter(per_minute=per_minute, burst=burst, collection=lambda: repo.sibling(RATE_SUFFIX), **kwargs)


def test_two_clients_on_one_store_share_one_limit(repo: InteractionRepository, mongo_uri: str, db_name: str) -> None:
    other = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions")
    first, second = shared(repo, per_minute=6, burst=3), shared(other, per_minute=6, burst=3)
    first.check("visitor")
    second.check("visitor")
    first.check("visitor")
    for limiter in (second, first):
        with pytest.raises(RateLimited) as refused:
            limiter.check("visitor")
        assert refused.value.retry_after == 10
    second.check("someone else")
    other.close()


def test_two_processes_on_one_store_enforce_one_limit(mongo_uri: str, db_name: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "django_hf_ml.settings", "PYTHONPATH": str(settings.BASE_DIR)}
    command = [sys.executable, "-c", TWO_PROCESSES_SCRIPT, mongo_uri, db_name]
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    counts = [int(output.split()[-1]) for output in outputs]
    assert sum(counts) == 5  # the burst, once, for both processes together (each alone would allow 5)
    cleanup = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions")
    cleanup.client.drop_database(db_name)
    cleanup.close()


def test_the_allowance_refills_in_the_store(repo: InteractionRepository) -> None:
    clock = Clock()
    limiter = shared(repo, per_minute=6, burst=1, clock=clock)
    limiter.check("visitor")
    clock.now += 4
    with pytest.raises(RateLimited) as refused:
        limiter.check("visitor")
    assert refused.value.retry_after == 6
    clock.now += 6
    limiter.check("visitor")


def test_ensure_indexes_creates_the_rate_ttl_index(repo: InteractionRepository) -> None:
    indexes = repo.sibling(RATE_SUFFIX).index_information()
    assert indexes["rate_ttl"]["expireAfterSeconds"] == 0


def test_store_down_counts_in_this_process_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    dead = InteractionRepository(
        uri=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        db_name="x",
        collection_name="interactions",
        timeout_ms=200,
    )
    limiter = shared(dead, per_minute=6, burst=2, retry_seconds=0)
    with caplog.at_level(logging.INFO, logger="app.services.rate_limit"):
        limiter.check("visitor")
        limiter.check("visitor")
        with pytest.raises(RateLimited):
            limiter.check("visitor")
    assert limiter.counting_locally
    warnings = [r for r in caplog.records if "counts visitors on its own" in r.getMessage()]
    assert len(warnings) == 1
    dead.close()


def test_store_back_counts_in_the_store_again(repo: InteractionRepository, caplog: pytest.LogCaptureFixture) -> None:
    reachable = [False]
    dead = InteractionRepository(
        uri=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        db_name="x",
        collection_name="interactions",
        timeout_ms=200,
    )
    limiter = SharedRateLimiter(
        per_minute=6,
        burst=5,
        collection=lambda: (repo if reachable[0] else dead).sibling(RATE_SUFFIX),
        retry_seconds=0,
    )
    limiter.check("visitor")
    assert limiter.counting_locally
    reachable[0] = True
    with caplog.at_level(logging.INFO, logger="app.services.rate_limit"):
        limiter.check("visitor")
    assert not limiter.counting_locally
    assert any("counted in MongoDB again" in r.getMessage() for r in caplog.records)
    assert repo.sibling(RATE_SUFFIX).count_documents({"_id": "visitor"}) == 1
    dead.close()
