"""Engine benchmark: the app's default engine vs a raw llama-server on the same GGUF file.

Both sides run the bundled SmolLM2-135M-Instruct Q4_1 file with the app's sidecar flags (``-t THREADS -np
LLAMA_SLOTS -c LLAMA_CTX``, by default 8 slots of 2048 tokens):

* **app** — the default engine as the app uses it: ``model_registry.service_for(None)`` (HF_ENGINE=auto →
  llamacpp), i.e. the ``ModelWorker`` queue, the openai SDK stream, the watched sidecar;
* **raw** — a second ``llama-server`` process started here, spoken to with ``http.client`` directly
  (the least a client can do: one POST, read the SSE lines);
* **raw-defaults** (section 3 only) — a third ``llama-server`` with none of our flags (``-m FILE --port N``:
  its own thread count, slot count and context), the same bare client.

Measured in one run, alternating app and raw so a busy machine shifts both alike, printed as ratios:

1. decode time per token for one client (median of several 128-token answers) — goal app/raw ≤ 1.25×;
2. total throughput with 8 concurrent clients — goal app/raw ≥ 0.8×;
3. open-loop Poisson arrivals with lengths drawn from 24–160 tokens, at each ``--loads`` fraction (35 % and
   70 % by default) of the raw server's measured 8-client capacity: p95 time to the first token / that
   side's idle time to the first token — goal ≤ 3× on the app (the default engine). The prompts cycle through
   eight (llama-server's prompt cache may hold them), or with ``--fresh-prompts`` none was sent before, idle
   requests included, so every first token pays for its whole prompt;
4. memory: resident set of each llama-server, of this process, and (unless ``--skip-transformers``) of a
   fresh process holding the transformers engine's float32 copy of the same model;
5./6. (unless ``--skip-transformers``) the transformers engine itself, static batcher vs continuous batching:
   8-client throughput (one wave of equal 64-token answers, and 8 users in closed loops of 24–160-token
   answers), and p95/idle first-token time under Poisson arrivals (goal ≤ 5×).

    .venv/bin/python bench/engine_bench.py             # ~2–3 minutes on 2 cores (+~30 s for transformers)
    .venv/bin/python bench/engine_bench.py --quick     # fewer repetitions
    .venv/bin/python bench/engine_bench.py --quick --skip-transformers --loads 0.35,0.7,0.9
    .venv/bin/python bench/engine_bench.py --skip-transformers --fresh-prompts   # no prompt-cache hits
    .venv/bin/python bench/engine_bench.py --transformers-only  # sections 5 and 6
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load_shapes import (  # noqa: E402
    PROMPTS,
    Client,
    Sample,
    closed_loop_throughput,
    concurrent_throughput,
    decode_ms,
    idle_ttft,
    p95,
    poisson_ttfts,
)

from app.services.engines.sidecar import LlamaSidecar, SidecarConfig  # noqa: E402


def raw_client(port: int) -> Client:
    """Stream one greedy chat completion from a llama-server with ``http.client`` (no SDK, no queue)."""

    def run(prompt: str, max_tokens: int) -> Sample:
        body = json.dumps(
            {
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "top_p": 1.0,
                "stream": True,
                "stream_options": {"include_usage": True},
                "top_k": 1,
                "min_p": 0.0,
            }
        )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        submitted = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        first: float | None = None
        tokens = 0
        chunks = 0
        for raw_line in response:
            line = raw_line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = event.get("usage")
            if usage:
                tokens = int(usage.get("completion_tokens") or tokens)
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
        done = time.perf_counter()
        connection.close()
        return Sample(submitted, first, done, tokens or chunks)

    return run


@dataclasses.dataclass(frozen=True)
class DefaultFlags(SidecarConfig):
    """A ``llama-server`` with its own defaults: only the model, the loopback host and a port."""

    def command(self, port: int) -> list[str]:
        return [str(self.binary), "-m", str(self.model_path), "--host", "127.0.0.1", "--port", str(port)]


def app_client() -> Client:
    """The default engine through the app's service: ``service_for(None).submit(...)``, events until done."""
    from app.domain.generation import GenerationParams
    from app.services.model_registry import service_for

    service = service_for(None)

    def run(prompt: str, max_tokens: int) -> Sample:
        submitted = time.perf_counter()
        request = service.submit(prompt, GenerationParams(max_new_tokens=max_tokens, do_sample=False))
        first: float | None = None
        for event in request.events(timeout=120):
            if event.kind == "token" and first is None:
                first = time.perf_counter()
            if event.kind == "error":
                raise RuntimeError(event.text)
        done = time.perf_counter()
        result = request.wait(1)
        return Sample(submitted, first, done, result.output_tokens)

    return run


def service_client(service: object) -> Client:
    """Any app service (``submit``/events), e.g. a transformers ``NLPService`` with static or continuous batching."""

    def run(prompt: str, max_tokens: int) -> Sample:
        from app.domain.generation import GenerationParams

        submitted = time.perf_counter()
        request = service.submit(prompt, GenerationParams(max_new_tokens=max_tokens, do_sample=False))  # type: ignore[attr-defined]
        first: float | None = None
        for event in request.events(timeout=600):
            if event.kind == "token" and first is None:
                first = time.perf_counter()
            if event.kind == "error":
                raise RuntimeError(event.text)
        done = time.perf_counter()
        return Sample(submitted, first, done, request.wait(1).output_tokens)

    return run


def transformers_section(arrivals: int, requests_each: int) -> None:
    """Static batcher vs continuous batching on the transformers engine (float32, the same bundled model)."""
    from app.services.bundled_model import ensure_bundled_model
    from app.services.engines.continuous import use_continuous_batching
    from app.services.engines.transformers_service import NLPService
    from app.services.nlp_service import bundled_models_dir
    from django_hf_ml.choices import BUNDLED_MODEL_ID

    folder = ensure_bundled_model(bundled_models_dir())
    static = NLPService(model=BUNDLED_MODEL_ID, task="text-generation", resolve_source=lambda: folder)
    continuous = use_continuous_batching(
        NLPService(model=BUNDLED_MODEL_ID, task="text-generation", resolve_source=lambda: folder)
    )
    clients = {"static": service_client(static), "continuous": service_client(continuous)}
    for service in (static, continuous):
        service.warm_up()
    for client in clients.values():
        client(PROMPTS[0], 8)
    wave: dict[str, list[float]] = {label: [] for label in clients}
    loops: dict[str, list[float]] = {label: [] for label in clients}
    for _ in range(2):  # alternate, so a busy moment of the machine falls on both sides alike
        for label, client in clients.items():
            wave[label].append(concurrent_throughput(client, 8, 64))
    for label, client in clients.items():
        loops[label].append(closed_loop_throughput(client, 8, requests_each, seed=5))
    shapes = {
        "8 clients x 64 tokens, one wave": wave,
        f"8 clients x {requests_each} requests each, 24–160 tokens, closed loop": loops,
    }
    for shape, figures in shapes.items():
        static_tps, continuous_tps = statistics.median(figures["static"]), statistics.median(figures["continuous"])
        print(
            f"5. transformers, {shape}: static {static_tps:.0f} tokens/s, continuous {continuous_tps:.0f} tokens/s "
            f"→ {continuous_tps / static_tps:.2f}×",
            flush=True,
        )
    rate = 0.7 * min(statistics.median(values) for values in wave.values()) / ((24 + 160) / 2)
    for label, client in clients.items():
        idle = idle_ttft(client, 4)
        ttfts = poisson_ttfts(client, rate=rate, count=arrivals, seed=12)
        print(
            f"6. transformers {label}, Poisson {rate:.2f} req/s, {arrivals} requests, 24–160 tokens: idle first "
            f"token {idle * 1000:.0f} ms, p95 {p95(ttfts) * 1000:.0f} ms → {p95(ttfts) / idle:.1f}× idle",
            flush=True,
        )
    static.unload()
    continuous.unload()


def rss_mb(pid: int) -> float:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def transformers_rss_mb(data_dir: Path) -> float:
    """Peak RSS of a fresh process that loads the bundled model on the transformers engine (float32)."""
    code = (
        "import os, resource, django; os.environ['DJANGO_SETTINGS_MODULE']='django_hf_ml.settings'; django.setup();"
        "from app.services.nlp_service import default_service; default_service().warm_up();"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    env = {**os.environ, "HF_ENGINE": "transformers", "DATA_DIR": str(data_dir), "LOG_LEVEL": "ERROR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _converted_data_dir() -> Path:
    """The app's DATA_DIR, with the bundled model converted for transformers (once, ~20 s)."""
    from django.conf import settings

    from app.services.bundled_model import ensure_bundled_model
    from app.services.nlp_service import bundled_models_dir

    ensure_bundled_model(bundled_models_dir())
    return Path(settings.DATA_DIR)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-transformers", action="store_true", help="no transformers memory / batching figures")
    parser.add_argument(
        "--fresh-prompts",
        action="store_true",
        help="section 3 with prompts no request sent before (no prompt-cache hits), idle time measured alike",
    )
    parser.add_argument("--transformers-only", action="store_true", help="only sections 5 and 6 (no llama-server)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loads", default="0.35,0.7", help="Poisson loads, fractions of the raw 8-client capacity")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up below: no orphan servers
    repeats = 3 if args.quick else 6
    arrivals = 16 if args.quick else 32

    data_dir = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "django_hf_ml.settings",
            "HF_ENGINE": "auto",
            "HF_MODEL": "",
            "HF_THREADS": str(args.threads),
            "HF_QUEUE_MAX": "256",
            "LOG_LEVEL": "WARNING",
            "ENV_FILE": str(data_dir / "none.env"),
        }
    )
    import django

    django.setup()
    from django.conf import settings

    if args.transformers_only:
        transformers_section(max(8, arrivals // 2), 2 if args.quick else 3)
        return 0
    from app.services.engines.choice import close_engine_services, find_binary
    from app.services.engines.llamacpp import LlamaCppService
    from app.services.model_registry import service_for

    binary = find_binary()
    if binary is None:
        print(f"No llama-server binary (PATH, LLAMA_SERVER_BIN, {settings.DATA_DIR}/llama.cpp): run dev.py first.")
        return 1
    service = service_for(None)
    if not isinstance(service, LlamaCppService):
        print(f"The default engine is not llamacpp here ({type(service).__name__}); nothing to compare.")
        return 1
    service.warm_up()
    flags = service.sidecar.config
    raw = LlamaSidecar(dataclasses.replace(flags, log_file=data_dir / "raw-llama-server.log", model_name="raw"))
    raw.ensure_started()
    app, baseline = app_client(), raw_client(raw.port)
    print(
        f"llama-server: {binary.describe()}; {flags.threads} thread(s), {flags.slots} slots, context {flags.ctx} "
        f"({flags.ctx // flags.slots} per slot); both sides warm"
    )
    defaults: LlamaSidecar | None = None
    try:
        for client in (app, baseline):  # warm both (first prompts fill caches)
            client(PROMPTS[0], 16)

        app_decode, raw_decode = [], []
        for _ in range(2):
            app_decode.append(decode_ms(app, repeats))
            raw_decode.append(decode_ms(baseline, repeats))
        app_ms, raw_ms = statistics.median(app_decode), statistics.median(raw_decode)
        print(f"1. decode, 1 client: app {app_ms:.2f} ms/token, raw {raw_ms:.2f} ms/token → {app_ms / raw_ms:.2f}×")

        app_tp, raw_tp = [], []
        for _ in range(2):
            app_tp.append(concurrent_throughput(app, 8, 128))
            raw_tp.append(concurrent_throughput(baseline, 8, 128))
        app_tps, raw_tps = statistics.median(app_tp), statistics.median(raw_tp)
        print(f"2. 8 clients: app {app_tps:.0f} tokens/s, raw {raw_tps:.0f} tokens/s → {app_tps / raw_tps:.2f}×")

        mean_length = (24 + 160) / 2
        defaults = LlamaSidecar(
            DefaultFlags(**{**dataclasses.asdict(flags), "log_file": data_dir / "raw-defaults.log", "model_name": "d"})
        )
        defaults.ensure_started()
        sides = {"app": app, "raw": baseline, "raw-defaults": raw_client(defaults.port)}
        sides["raw-defaults"](PROMPTS[0], 16)
        # Fresh prompts: every side and every load gets its own never-seen prompts (seeds differ), lengths alike.
        fresh = {label: (100 + number if args.fresh_prompts else None) for number, label in enumerate(sides)}
        idle = {label: idle_ttft(client, repeats + 2, fresh_seed=fresh[label]) for label, client in sides.items()}
        prompts = "fresh prompts" if args.fresh_prompts else "8 prompts in turn"
        for round_number, load in enumerate(float(value) for value in args.loads.split(",")):
            rate = load * raw_tps / mean_length
            for label, client in sides.items():
                seed = None if fresh[label] is None else fresh[label] + 10 * (round_number + 1)
                ttfts = poisson_ttfts(client, rate=rate, count=arrivals, seed=12, fresh_seed=seed)
                print(
                    f"3. Poisson {load:.0%} of raw capacity ({rate:.2f} req/s), {arrivals} requests, 24–160 tokens, "
                    f"{prompts} ({label}): idle first token {idle[label] * 1000:.1f} ms, p50 "
                    f"{statistics.median(ttfts) * 1000:.1f} ms, p95 {p95(ttfts) * 1000:.1f} ms → "
                    f"{p95(ttfts) / idle[label]:.2f}× idle",
                    flush=True,
                )
        defaults.close()

        app_sidecar = service.sidecar.pid
        assert app_sidecar is not None and raw.pid is not None
        memory = (
            f"4. memory (RSS): app's llama-server {rss_mb(app_sidecar):.0f} MB, raw llama-server "
            f"{rss_mb(raw.pid):.0f} MB, this app process {rss_mb(os.getpid()):.0f} MB"
        )
        print(memory, flush=True)
        if not args.skip_transformers:
            rss = transformers_rss_mb(_converted_data_dir())
            print(f"   transformers engine (float32, fresh process, peak): {rss:.0f} MB", flush=True)
        if not args.skip_transformers:
            raw.stop()  # leave the cores to the transformers engine
            service.unload()
            transformers_section(max(8, arrivals // 2), 2 if args.quick else 3)
    finally:
        raw.close()
        if defaults is not None:
            defaults.close()
        close_engine_services()
    return 0


if __name__ == "__main__":
    sys.exit(main())
