"""Serving benchmark on the bundled SmolLM2-135M: batching, streaming latency, app overhead, cache, memory.

Everything is measured in one run and printed as ratios, so a busy machine shifts all numbers alike:

* baseline — what a user would write: plain ``transformers`` ``generate()`` once per request, one at a time;
* ours at 1, 4 and 8 concurrent clients — streaming requests through the app's inference worker
  (micro-batched): throughput (generated tokens/s) as a ratio to the baseline, p50/p95 latency, and the
  time to the first streamed token as a ratio to one forward pass over the prompt;
* app overhead — ``POST /api/generate`` through Django (middleware, form, record written to the
  outbox and MongoDB) minus the time the model service took, as % of that time;
* cache — the same greedy request again: end-to-end API time, and the cache lookup alone;
* durable generation — streamed answers with their record (write-ahead, a checkpoint every 0.5 s, final)
  against the same requests without one: record writes per generated token and the overhead (%);
* memory — peak RSS of a fresh process with no model, one model, and two models loaded (the second one
  is another SmolLM2 copy: the registry keeps separate weights per offered model).

    .venv/bin/python bench/generation_bench.py            # ~3–5 minutes on 2 cores
    .venv/bin/python bench/generation_bench.py --quick    # ~1–2 minutes, fewer and shorter requests

Goals: ≥ 2.5× baseline throughput at 8 clients; first token ≤ 1.5× one forward pass;
overhead ≤ 5 % (API and checkpointed streams); cached answer ≥ 50× faster.
Starts its own throwaway SecantusDB and data folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from durable_figures import durable_figures, print_durable  # noqa: E402  (bench/ is the script's folder)
from plain_baseline import MODEL_DIR, Run, baseline, in_thread, load_plain, one_forward_pass  # noqa: E402

PROMPTS = (
    "What is the capital of France?",
    "Name three primary colors.",
    "Write one sentence about the sea.",
    "What is 12 times 12?",
    "Give me a synonym for happy.",
    "Why is the sky blue? Answer briefly.",
    "Translate 'good morning' into Spanish.",
    "List two planets of the solar system.",
    "What does a bee make?",
    "Suggest a name for a black cat.",
    "What is the boiling point of water in Celsius?",
    "Describe a tree in five words.",
)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def configure_django(data_dir: Path, mongo_uri: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "django_hf_ml.settings",
            "DATA_DIR": str(data_dir),
            "HF_MODEL": str(MODEL_DIR),
            "HF_TASK": "text-generation",
            "MONGO_URI": mongo_uri,
            "RATE_LIMIT_PER_MINUTE": "0",
            "HF_WARMUP": "0",
            "DEBUG": "1",
            "LOG_LEVEL": "WARNING",
            "ENV_FILE": str(data_dir / "no.env"),
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)


def ensure_model() -> None:
    if (MODEL_DIR / ".complete").is_file():
        return
    print("Converting the bundled model once (python manage.py prepare_model --skip-warmup)…", flush=True)
    subprocess.run([sys.executable, "manage.py", "prepare_model", "--skip-warmup"], cwd=ROOT, check=True)


# --- Ours: concurrent streaming clients through the worker --------------------------------------


def concurrent_clients(service: Any, clients: int, per_client: int, max_new_tokens: int) -> Run:
    from app.domain.generation import GenerationParams

    params = GenerationParams(max_new_tokens=max_new_tokens)
    run = Run(f"ours x{clients}", wall=0.0, tokens=0)
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def client(index: int) -> None:
        start_together.wait()
        for turn in range(per_client):
            prompt = PROMPTS[(index * per_client + turn) % len(PROMPTS)]
            t0 = time.perf_counter()
            request = service.submit(prompt, params)
            first = None
            for event in request.events(timeout=600):
                if event.kind == "token" and first is None:
                    first = time.perf_counter() - t0
            result = request.wait(600)
            latency = time.perf_counter() - t0
            with lock:
                run.tokens += result.output_tokens
                run.latencies.append(latency)
                if first is not None:
                    run.first_tokens.append(first)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - started
    return run


# --- App overhead and cache (Django test client, real MongoDB-protocol store) -------------------


def api_post(client: Any, prompt: str, max_new_tokens: int) -> tuple[float, dict[str, Any]]:
    body = {"prompt": prompt, "params": {"max_new_tokens": max_new_tokens}}
    t0 = time.perf_counter()
    response = client.post("/api/generate", body, content_type="application/json")
    elapsed = time.perf_counter() - t0
    assert response.status_code == 201, response.content
    return elapsed, response.json()


def app_overhead(max_new_tokens: int, prompts: list[str]) -> tuple[float, float]:
    """Mean (API wall - model service time) and mean model service time, cache off, after one warm-up call."""
    from django.conf import settings
    from django.test import Client

    from app.services import answer_cache

    settings.ANSWER_CACHE_SIZE = 0
    answer_cache.reset_cache()
    client = Client()
    # One request first: the process's first API call pays one-time costs (the store connection and its
    # sessions, Django's first request) that are not per-request overhead.
    api_post(client, "warm-up request (overhead run)", max_new_tokens)
    overheads, model_times = [], []
    for prompt in prompts:
        wall, data = api_post(client, f"{prompt} (overhead run)", max_new_tokens)
        model_ms = data["timings_ms"]["model_total_ms"] / 1000
        overheads.append(wall - model_ms)
        model_times.append(model_ms)
    settings.ANSWER_CACHE_SIZE = 512
    answer_cache.reset_cache()
    return statistics.mean(overheads), statistics.mean(model_times)


def cache_speedup(max_new_tokens: int, repeats: int) -> tuple[float, float, float]:
    """(uncached API time, cached API time median, cache lookup alone median)."""
    from django.test import Client

    from app.domain.generation import GenerationParams
    from app.domain.interaction import Scope
    from app.services import answer_cache

    client = Client()
    uncached, first = api_post(client, "Tell me about the moon in two sentences.", max_new_tokens)
    assert first["cached"] is False
    cached_times = []
    for _ in range(repeats):
        elapsed, again = api_post(client, "Tell me about the moon in two sentences.", max_new_tokens)
        assert again["cached"] is True
        cached_times.append(elapsed)
    scope = Scope(session_id=client.session["visitor_id"])
    params = GenerationParams(max_new_tokens=max_new_tokens)
    prompt = "Tell me about the moon in two sentences."
    key = answer_cache.cache_key(model=first["model"], task=first["task"], params=params, prompt=prompt)
    lookups = []
    for _ in range(50):
        t0 = time.perf_counter()
        assert answer_cache.lookup(scope=scope, key=key) is not None
        lookups.append(time.perf_counter() - t0)
    return uncached, statistics.median(cached_times), statistics.median(lookups)


# --- Memory: fresh processes --------------------------------------------------------------------


def measure_memory(data_dir: Path) -> dict[int, dict[str, float]]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    results = {}
    for models in (0, 1, 2):
        completed = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "memory_probe.py"), str(models)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        reports = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if not reports:
            raise RuntimeError(f"memory probe with {models} model(s) failed: {completed.stderr[-500:]}")
        results[models] = json.loads(reports[-1])
    return results


# --- Report -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets goal" if ok else "BELOW GOAL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter requests (~1–2 min)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--durable-only", action="store_true", help="only the durable-generation figures")
    args = parser.parse_args()
    ensure_model()
    max_new_tokens = args.max_new_tokens or (16 if args.quick else 32)
    per_client = 1 if args.quick else 2
    sequential_requests = 8

    from app.services.local_store import free_port, start_local_store

    with tempfile.TemporaryDirectory(prefix="genbench-") as tmp:
        data_dir = Path(tmp)
        store = start_local_store(
            host="127.0.0.1", port=free_port(), storage_dir=data_dir / "mongo", log_file=data_dir / "mongo.log"
        )
        try:
            configure_django(data_dir, store.uri)
            report(args, data_dir, max_new_tokens, per_client, sequential_requests)
        finally:
            store.stop()


def report(args: argparse.Namespace, data_dir: Path, max_new_tokens: int, per_client: int, sequential: int) -> None:
    import torch

    from app.domain.generation import GenerationParams
    from app.services.mongo_repo import get_repository
    from app.services.nlp_service import default_service

    get_repository().ensure_indexes()
    print(f"torch threads: {torch.get_num_threads()}  max_new_tokens: {max_new_tokens}  greedy", flush=True)
    if args.durable_only:
        service = default_service()
        service.warm_up()
        print_durable(durable_figures(service, list(PROMPTS[:4] if args.quick else PROMPTS[:6]), max_new_tokens * 4))
        return

    tokenizer, model = load_plain()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(sequential)]
    in_thread(baseline, tokenizer, model, prompts[:1], max_new_tokens)  # warm-up
    base = in_thread(baseline, tokenizer, model, prompts, max_new_tokens)
    forward = in_thread(one_forward_pass, tokenizer, model, PROMPTS[0])
    del model

    service = default_service()
    service.warm_up()
    service.generate(PROMPTS[0], GenerationParams(max_new_tokens=4))  # warm-up
    runs = [concurrent_clients(service, clients, per_client * (8 // clients), max_new_tokens) for clients in (1, 4, 8)]

    print()
    header = ("run", "requests", "tokens", "tok/s", "x base", "p50 s", "p95 s", "TTFT p50")
    print("{:<12} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}".format(*header))
    for run in [base, *runs]:
        ttft = f"{statistics.median(run.first_tokens) * 1000:7.0f}ms" if run.first_tokens else "        -"
        print(
            f"{run.label:<12} {len(run.latencies):>8} {run.tokens:>7} {run.throughput:>7.1f} "
            f"{run.throughput / base.throughput:>7.2f} {statistics.median(run.latencies):>7.2f} "
            f"{percentile(run.latencies, 95):>7.2f} {ttft}"
        )
    worker = service.worker()
    print(f"worker: {worker.batches_run} batches, largest {worker.largest_batch}")

    overhead, model_time = app_overhead(max_new_tokens, list(PROMPTS[:4] if args.quick else PROMPTS[:6]))
    uncached, cached, lookup = cache_speedup(max_new_tokens, repeats=5)
    durable = durable_figures(service, list(PROMPTS[:4] if args.quick else PROMPTS[:6]), max_new_tokens * 4)
    memory = {} if args.skip_memory else measure_memory(data_dir)

    eight = runs[-1]
    ttft_one = statistics.median(runs[0].first_tokens)
    ratios = [
        (
            "throughput at 8 clients / baseline",
            eight.throughput / base.throughput,
            ">= 2.5",
            eight.throughput / base.throughput >= 2.5,
        ),
        ("first token (1 client) / one forward pass", ttft_one / forward, "<= 1.5", ttft_one / forward <= 1.5),
        ("app overhead / model time (API, %)", 100 * overhead / model_time, "<= 5", 100 * overhead / model_time <= 5),
        ("uncached / cached API answer", uncached / cached, ">= 50", uncached / cached >= 50),
        ("durable stream overhead (checkpoints, %)", durable.overhead_pct, "<= 5", durable.overhead_pct <= 5),
        ("record writes per generated token", durable.writes_per_token, "-", True),
    ]
    print()
    print(f"one forward pass over the prompt: {forward * 1000:.0f} ms;", end=" ")
    print(f"first token p50 at 1 client: {ttft_one * 1000:.0f} ms")
    print(f"app overhead: {overhead * 1000:.1f} ms per request on {model_time * 1000:.0f} ms of model time")
    print(
        f"cache: uncached API {uncached * 1000:.0f} ms, cached API {cached * 1000:.1f} ms, "
        f"lookup alone {lookup * 1e6:.0f} µs ({uncached / lookup:.0f}x)"
    )
    print_durable(durable)
    if memory:
        none, one, two = (memory[n]["peak_rss_mb"] for n in (0, 1, 2))
        weights = memory[1]["weights_mb"]
        print(f"peak RSS: no model {none:.0f} MB, one model {one:.0f} MB, two models {two:.0f} MB", end="")
        print(f" (weights {weights:.0f} MB per model)")
    print()
    print(f"{'ratio':<44} {'value':>8}  {'goal':<7} verdict")
    for name, value, goal, ok in ratios:
        print(f"{name:<44} {value:>8.2f}  {goal:<7} {verdict(ok)}")


if __name__ == "__main__":
    main()
