"""History at scale: time the first page, a deep page and a search at 1k, 10k and 100k interactions.

Starts its own throwaway SecantusDB server (free port, temporary folder), bulk-inserts synthetic
interactions for one visitor (one a minute, the newest a day ago, plus another visitor's noise) and prints
each timing as a ratio to the smallest size. Goal: every ratio stays within 2x — an index can do
that, a scan cannot.

    .venv/bin/python bench/history_bench.py                 # 1k, 10k, 100k
    .venv/bin/python bench/history_bench.py --sizes 1000,10000
    MONGO_URI=mongodb://… .venv/bin/python bench/history_bench.py   # against another server
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from app.services.mongo_documents import to_document

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import monitoring  # noqa: E402

from app.domain.filters import HistoryFilter
from app.domain.ids import utc_now
from app.domain.interaction import Interaction, Scope
from app.domain.search import parse_query
from app.services.local_store import temporary_store  # noqa: E402
from app.services.mongo_repo import InteractionRepository
from app.services.stats import compute_stats

VISITOR = Scope(session_id="bench-visitor")
OTHER = Scope(session_id="bench-other")
WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "capital",
    "city",
    "river",
    "mountain",
    "history",
    "science",
    "music",
    "language",
    "code",
    "python",
    "django",
    "mongo",
    "index",
    "search",
    "page",
    "cursor",
    "window",
    "token",
    "prompt",
    "number",
    "planet",
    "ocean",
    "forest",
    "winter",
    "summer",
    "energy",
    "light",
    "sound",
    "color",
    "paris",
    "france",
    "berlin",
    "germany",
    "rome",
    "italy",
    "madrid",
    "spain",
    "lisbon",
    "portugal",
    "vienna",
    "austria",
    "prague",
    "athens",
    "greece",
    "cairo",
    "egypt",
    "tokyo",
    "japan",
    "delhi",
    "india",
    "lima",
    "peru",
    "quito",
    "chile",
]
HISTORY_MEASURES = ("first page", "deep page", "search", "search deep")
SEARCH = "capital par"  # a whole word and a prefix, the way a person types
CHUNK = 2000


def synthetic(n: int, rng: random.Random, scope: Scope, newest: datetime) -> Interaction:
    prompt = " ".join(rng.choices(WORDS, k=8)) + f" item{n}?"
    output = " ".join(rng.choices(WORDS, k=30)) + "."
    return Interaction(
        prompt=prompt,
        output=output,
        model="bench-model",
        task="text-generation",
        created_at=newest - timedelta(minutes=n),
        **scope.owner_fields(),
    )


def fill(repo: InteractionRepository, size: int, newest: datetime) -> None:
    rng = random.Random(size)
    batch: list[Interaction] = []
    started = time.perf_counter()
    for n in range(size):
        batch.append(synthetic(n, rng, VISITOR, newest))
        if n % 10 == 0:
            batch.append(synthetic(n, rng, OTHER, newest))
        if len(batch) >= CHUNK:
            repo.import_batch(batch)
            batch = []
            print(f"\r  filled {n + 1}/{size}", end="", flush=True)
    repo.import_batch(batch)
    print(f"\r  filled {size} (+{size // 10} other visitor) in {time.perf_counter() - started:.1f} s")


class WorkCounter(monitoring.CommandListener):
    """Counts the queries a call sends and the documents the server hands back (noise-free, unlike time)."""

    def __init__(self) -> None:
        self.queries = 0
        self.documents = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "getMore", "aggregate"):
            self.queries += event.command_name != "getMore"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor") if isinstance(event.reply, dict) else None
        if isinstance(cursor, dict):
            self.documents += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def work(self, action: Callable[[], object]) -> tuple[int, int]:
        self.queries = self.documents = 0
        action()
        return self.queries, self.documents


WORK = WorkCounter()
monitoring.register(WORK)


def timed(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return min(samples) * 1000


def measure(
    repo: InteractionRepository, size: int, repeat: int, newest: datetime, work: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Best of ``repeat`` runs (the machine is shared: the minimum is the cost, the rest is noise)."""
    halfway = newest - timedelta(minutes=size // 2)
    search = HistoryFilter(search=parse_query(SEARCH))
    # Deep cursors as "Load more" hands them out: from a page that ends half-way through the history.
    deep = repo.page(scope=VISITOR, limit=20, filters=HistoryFilter(until=halfway)).next_cursor
    deep_search = repo.page(scope=VISITOR, limit=20, filters=replace(search, until=halfway)).next_cursor
    actions: dict[str, Callable[[], object]] = {
        "first page": lambda: repo.page(scope=VISITOR, limit=20),
        "deep page": lambda: repo.page(scope=VISITOR, cursor=deep, limit=20),
        "search": lambda: repo.page(scope=VISITOR, limit=20, filters=search),
        "search deep": lambda: repo.page(scope=VISITOR, cursor=deep_search, limit=20, filters=search),
    }
    for name, action in actions.items():
        work[name] = WORK.work(action)
    results = {
        **{name: timed(action, repeat) for name, action in actions.items()},
        # The stats page, aggregated from scratch: a bounded range costs what it holds.
        "stats 24h": timed(
            lambda: compute_stats(scope=VISITOR, range_key="24h", now=newest, repository=repo, cache_seconds=0), repeat
        ),
    }
    page = repo.page(scope=VISITOR, limit=20, filters=search)
    assert len(page.items) == 20 and all(search.accepts(to_document(item)) for item in page.items)
    assert len(repo.page(scope=VISITOR, cursor=deep, limit=20).items) == 20
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated history sizes")
    parser.add_argument("--repeat", type=int, default=9, help="timings per measure (the best is shown)")
    args = parser.parse_args()
    sizes = [int(part) for part in args.sizes.split(",")]
    external_uri = os.environ.get("MONGO_URI", "")
    with contextlib.ExitStack() as stack:
        uri = external_uri or stack.enter_context(temporary_store("history-bench-")).uri
        table: dict[int, dict[str, float]] = {}
        work: dict[int, dict[str, tuple[int, int]]] = {}
        for size in sizes:
            repo = InteractionRepository(
                uri=uri, db_name=f"history_bench_{size}", collection_name="interactions", timeout_ms=60_000
            )
            repo.client.drop_database(f"history_bench_{size}")
            repo.ensure_indexes()
            print(f"{size} interactions:")
            # The visitor's last prompt was a day ago: the first page has to find where history starts,
            # and the time the fill itself takes (minutes at 100k) hardly changes that gap.
            newest = utc_now() - timedelta(days=1)
            fill(repo, size, newest)
            work[size] = {}
            table[size] = measure(repo, size, args.repeat, newest, work[size])
            if external_uri:
                repo.client.drop_database(f"history_bench_{size}")
            repo.close()
    base = table[sizes[0]]
    print(f"\n{'size':>8} " + " ".join(f"{name:>22}" for name in base))
    for size, row in table.items():
        cells = [f"{row[name]:8.1f} ms ({row[name] / base[name]:4.2f}x)" for name in base]
        print(f"{size:>8} " + " ".join(f"{cell:>22}" for cell in cells))
    print("\nwork per call (queries / documents read) — what the times above are made of, without the noise:")
    print(f"{'size':>8} " + " ".join(f"{name:>22}" for name in HISTORY_MEASURES))
    for size, row in work.items():
        print(f"{size:>8} " + " ".join(f"{f'{row[name][0]} / {row[name][1]}':>22}" for name in HISTORY_MEASURES))
    history = [name for name in base if name in HISTORY_MEASURES]
    worst = max(row[name] / base[name] for row in table.values() for name in history)
    print(f"\nworst history ratio ({', '.join(history)}) to the {sizes[0]} case: {worst:.2f}x (goal: <= 2x)")


if __name__ == "__main__":
    main()
