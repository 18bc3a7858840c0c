"""Stats page at scale: time the stats aggregation at 1k, 10k and 100k interactions.

Starts its own throwaway SecantusDB server (free port, temporary folder), bulk-inserts synthetic
interactions for one visitor (one a minute, newest now, 3 models, ~5 % errors, ~3 % cancelled,
half of them with a time to first token, plus another visitor's noise) and times
``compute_stats`` for each range, printing each timing as a ratio to the smallest size. Ranges
are timed cold (``cache_seconds=0``: everything aggregated) and, for "7d" and "all", warm (the
finished days come from the per-process cache and only today is aggregated, as when a person
reloads or switches ranges).

What to expect: the ``$match`` on (owner, created_at) is an index range, so a range costs what it
contains, not what the history holds. With one interaction a minute, "24h" holds at most 1,440
interactions whatever the size (ratio stays near 1-1.5x), "7d" grows until the history is a week
long (10k) and then stays flat (100k vs 10k ~ 1x); "all" reads everything and grows linearly.

    .venv/bin/python bench/stats_bench.py                   # 1k, 10k, 100k
    .venv/bin/python bench/stats_bench.py --quick           # 1k, 10k
    .venv/bin/python bench/stats_bench.py --sizes 1000,50000 --repeat 3
    MONGO_URI=mongodb://… .venv/bin/python bench/stats_bench.py   # against another server
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from app.services.mongo_documents import to_document

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.domain.ids import utc_now
from app.domain.interaction import Interaction, Scope
from app.domain.stats import RANGES
from app.services.local_store import temporary_store  # noqa: E402
from app.services.mongo_repo import InteractionRepository
from app.services.stats import compute_stats, scope_match

VISITOR = Scope(session_id="stats-bench-visitor")
OTHER = Scope(session_id="stats-bench-other")
MODELS = (
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "text-generation"),
    ("google/flan-t5-small", "text2text-generation"),
    ("tiny/local-model", "text-generation"),
)
CHUNK = 2000


def synthetic(n: int, rng: random.Random, scope: Scope, newest: datetime) -> dict[str, object]:
    model, task = rng.choice(MODELS)
    status = rng.choices(("ok", "error", "cancelled"), weights=(92, 5, 3))[0]
    tokens = rng.randint(4, 64) if status != "error" else 0
    durations: dict[str, float] = {}
    if status != "error":
        durations["generate_ms"] = round(tokens * rng.uniform(20, 45), 1)
        if rng.random() < 0.5:
            durations["first_token_ms"] = round(rng.uniform(30, 120), 1)
    interaction = Interaction(
        prompt=f"prompt {n}",
        output=f"answer {n}",
        model=model,
        task=task,
        output_tokens=tokens,
        durations_ms=durations,
        status=status,
        created_at=newest - timedelta(minutes=n),
        **scope.owner_fields(),
    )
    return to_document(interaction)


def fill(repo: InteractionRepository, size: int, newest: datetime) -> None:
    rng = random.Random(size)
    batch: list[dict[str, object]] = []
    started = time.perf_counter()
    for n in range(size):
        batch.append(synthetic(n, rng, VISITOR, newest))
        if n % 10 == 0:
            batch.append(synthetic(n, rng, OTHER, newest))
        if len(batch) >= CHUNK:
            repo.collection.insert_many(batch, ordered=False)
            batch = []
            print(f"\r  filled {n + 1}/{size}", end="", flush=True)
    if batch:
        repo.collection.insert_many(batch, ordered=False)
    print(f"\r  filled {size} (+{size // 10} other visitor) in {time.perf_counter() - started:.1f} s")


def timed(action: Callable[[], object], repeat: int) -> float:
    action()  # warm the server's caches and the client's connection
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(repo: InteractionRepository, repeat: int, now: datetime) -> tuple[dict[str, float], dict[str, int]]:
    timings: dict[str, float] = {}
    in_range: dict[str, int] = {}
    for key, stats_range in RANGES.items():
        match = scope_match(VISITOR, since=stats_range.since(now))
        in_range[key] = repo.collection.count_documents(match)
        cold = partial(compute_stats, scope=VISITOR, range_key=key, now=now, repository=repo, cache_seconds=0)
        timings[key] = timed(cold, repeat)
    for key in ("7d", "all"):  # finished days come from the per-process cache; today is read fresh
        warm = partial(compute_stats, scope=VISITOR, range_key=key, now=now, repository=repo)
        timings[f"{key} cached"] = timed(warm, repeat)
        in_range[f"{key} cached"] = in_range[key]
    report = compute_stats(scope=VISITOR, range_key="7d", now=now, repository=repo, cache_seconds=0)
    assert report.overall.interactions == in_range["7d"], "the stats must count exactly the range"
    return timings, in_range


def explain_plan(repo: InteractionRepository, now: datetime) -> str:
    """Which index the stats ``$match`` uses (the first stage of the pipeline)."""
    match = scope_match(VISITOR, since=RANGES["24h"].since(now))
    plan = repo.collection.find(match).explain().get("queryPlanner", {}).get("winningPlan", {})
    stage = plan
    while isinstance(stage, dict) and "inputStage" in stage:
        stage = stage["inputStage"]
    return f"{stage.get('stage', '?')} {stage.get('indexName', '')}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated history sizes")
    parser.add_argument("--quick", action="store_true", help="only 1k and 10k")
    parser.add_argument("--repeat", type=int, default=5, help="timings per measure (median is shown)")
    args = parser.parse_args()
    sizes = [1000, 10000] if args.quick else [int(part) for part in args.sizes.split(",")]
    with contextlib.ExitStack() as stack:
        uri = os.environ.get("MONGO_URI", "") or stack.enter_context(temporary_store("stats-bench-")).uri
        table: dict[int, tuple[dict[str, float], dict[str, int]]] = {}
        for size in sizes:
            db_name = f"stats_bench_{size}"
            repo = InteractionRepository(uri=uri, db_name=db_name, collection_name="interactions", timeout_ms=60_000)
            repo.client.drop_database(db_name)
            repo.ensure_indexes()
            print(f"{size} interactions:")
            now = utc_now()
            fill(repo, size, now)
            table[size] = measure(repo, args.repeat, now)
            print(f"  24h $match plan: {explain_plan(repo, now)}")
            repo.client.drop_database(db_name)
            repo.close()
    base = table[sizes[0]][0]
    print("\nstats computation, median ms (ratio to the first size) [interactions in range]")
    print(f"{'size':>8} " + " ".join(f"{name:>25}" for name in base))
    for size, (row, counts) in table.items():
        cells = [f"{row[name]:7.1f} ({row[name] / base[name]:5.2f}x) [{counts[name]}]" for name in base]
        print(f"{size:>8} " + " ".join(f"{cell:>25}" for cell in cells))
    last = table[sizes[-1]][0]
    print(f"\n24h at {sizes[-1]} vs {sizes[0]}: {last['24h'] / base['24h']:.2f}x (goal <= 2x: the range is bounded)")
    week = [size for size in sizes if size >= 10_080]  # one a minute: a full week from 10,080 interactions
    if len(week) > 1:
        first_full = table[week[0]][0]
        print(
            f"7d at {week[-1]} vs {week[0]}: {last['7d'] / first_full['7d']:.2f}x "
            "(goal <= 2x: once the history is longer than the range, its size no longer matters)"
        )


if __name__ == "__main__":
    main()
