"""Precision benchmark: per-token latency and throughput of float32 vs int8 vs bfloat16, batch 1 and 8.

Loads the bundled SmolLM2-135M-Instruct (``var/models/smollm2-135m-instruct``, converted first if
missing) through the app's own loader (``app.services.device``), generates a fixed number of new
tokens greedily for a batch of chat prompts, and prints one table whose ratios all come from this
one run. Every row is compared with float32 at the same batch size: ``speed`` is float32's time
divided by this row's time (above 1 = faster), ``same ids`` the share of rows whose greedy tokens
equal float32's.

    .venv/bin/python bench/precision_bench.py                  # CPU: float32, int8, bfloat16 × batch 1, 8
    .venv/bin/python bench/precision_bench.py --quick          # fewer tokens, one timed run (~1 min)
    .venv/bin/python bench/precision_bench.py --device cuda    # GPU: float32, bfloat16, float16
    .venv/bin/python bench/precision_bench.py --model path/to/folder --dtypes float32,int8 --batches 1,4

Numbers on a busy machine are noisy (best of ``--repeats`` runs is kept); compare ratios, not
absolute figures, and rerun on a quiet machine before quoting them.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.services.device import (  # noqa: E402
    RuntimeProfile,
    RuntimeRequest,
    RuntimeUnavailable,
    apply_runtime,
    apply_threads,
    resolve_runtime,
    run_off_main_thread,
    torch_dtype,
)
from app.services.quality import QUALITY_PROMPTS  # noqa: E402

DEFAULT_MODEL = ROOT / "var" / "models" / "smollm2-135m-instruct"
CPU_DTYPES = "float32,int8,bfloat16"
GPU_DTYPES = "float32,bfloat16,float16"


@dataclass(frozen=True)
class Measurement:
    dtype: str
    batch: int
    load_seconds: float
    seconds: float  # best run: generate() of `new_tokens` tokens for the whole batch
    new_tokens: int
    token_ids: tuple[tuple[int, ...], ...]

    @property
    def ms_per_token(self) -> float:
        """Latency of one decoding step as one user sees it (whole batch advances one token)."""
        return 1000 * self.seconds / self.new_tokens

    @property
    def tokens_per_second(self) -> float:
        return self.batch * self.new_tokens / self.seconds


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="A causal model folder.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu).")
    parser.add_argument("--dtypes", default="", help=f"Comma list (default {CPU_DTYPES} on CPU, {GPU_DTYPES} on GPU).")
    parser.add_argument("--batches", default="1,8", help="Comma list of batch sizes (default 1,8).")
    parser.add_argument("--new-tokens", type=int, default=32, help="New tokens per answer (default 32).")
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs per row; the best is kept (default 2).")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: the cores we may use).")
    parser.add_argument("--quick", action="store_true", help="16 new tokens, one timed run.")
    args = parser.parse_args(argv)
    if args.quick:
        args.new_tokens, args.repeats = 16, 1
    return args


def ensure_model(folder: Path) -> Path:
    if (folder / "config.json").is_file():
        return folder
    if folder != DEFAULT_MODEL:
        sys.exit(f"{folder} is not a model folder (no config.json).")
    from app.services.bundled_model import ensure_bundled_model

    print(f"Converting the bundled model into {folder} once (~15 s)…", flush=True)
    return ensure_bundled_model(folder.parent)


def encode_batch(tokenizer: Any, batch: int, device: str) -> dict[str, Any]:
    prompts = [QUALITY_PROMPTS[index % len(QUALITY_PROMPTS)] for index in range(batch)]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        for prompt in prompts
    ]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {name: tensor.to(device) for name, tensor in encoded.items() if name in ("input_ids", "attention_mask")}


def generate(model: Any, tokenizer: Any, inputs: dict[str, Any], new_tokens: int) -> tuple[float, Any]:
    import torch

    synchronize(model.device)
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,  # the same amount of work for every precision
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    synchronize(model.device)
    return time.perf_counter() - started, output


def synchronize(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def measure(
    folder: Path, profile: RuntimeProfile, batches: list[int], new_tokens: int, repeats: int
) -> list[Measurement]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    started = time.perf_counter()
    apply_threads(profile)
    model = apply_runtime(AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(profile.dtype)), profile)
    load_seconds = time.perf_counter() - started
    results = []
    for batch in batches:
        inputs = encode_batch(tokenizer, batch, profile.device)
        # In a worker thread, as the server generates (torch in the main thread is far slower under load).
        run_off_main_thread(partial(generate, model, tokenizer, inputs, 2))  # warm-up: allocations, caches
        runs = [run_off_main_thread(partial(generate, model, tokenizer, inputs, new_tokens)) for _ in range(repeats)]
        seconds, output = min(runs, key=lambda run: run[0])
        prompt_length = inputs["input_ids"].shape[-1]
        ids = tuple(tuple(row[prompt_length:].tolist()) for row in output)
        results.append(Measurement(profile.dtype, batch, load_seconds, seconds, new_tokens, ids))
        print(f"  {profile.dtype:<9} batch {batch}: {1000 * seconds / new_tokens:.1f} ms/token", flush=True)
    del model
    gc.collect()
    return results


def same_ids(row: Measurement, reference: Measurement) -> float:
    pairs = list(zip(row.token_ids, reference.token_ids, strict=True))
    return sum(left == right for left, right in pairs) / len(pairs)


def table(measurements: list[Measurement]) -> list[str]:
    reference = {item.batch: item for item in measurements if item.dtype == "float32"}
    lines = [
        f"{'dtype':<9} {'batch':>5} {'load s':>7} {'ms/token':>9} {'tokens/s':>9} {'speed':>7} {'same ids':>9}",
    ]
    for item in sorted(measurements, key=lambda m: (m.batch, m.dtype != "float32")):
        base = reference.get(item.batch)
        speed = f"{base.seconds / item.seconds:.2f}x" if base else "n/a"
        agree = f"{same_ids(item, base):.0%}" if base else "n/a"
        lines.append(
            f"{item.dtype:<9} {item.batch:>5} {item.load_seconds:>7.2f} {item.ms_per_token:>9.1f} "
            f"{item.tokens_per_second:>9.1f} {speed:>7} {agree:>9}"
        )
    for batch in sorted(reference):
        if batch != 1 and 1 in reference:
            gain = reference[batch].tokens_per_second / reference[1].tokens_per_second
            lines.append(f"float32 batch {batch} vs batch 1: {gain:.2f}x the throughput")
    return lines


def main(argv: list[str]) -> int:
    import torch

    args = parse_args(argv)
    folder = ensure_model(args.model)
    batches = [int(part) for part in args.batches.split(",") if part.strip()]
    try:
        probe = resolve_runtime(RuntimeRequest(device=args.device, dtype="float32", threads=args.threads or None))
    except RuntimeUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    default_dtypes = CPU_DTYPES if probe.device == "cpu" else GPU_DTYPES
    dtypes = [part.strip() for part in (args.dtypes or default_dtypes).split(",") if part.strip()]
    if "float32" not in dtypes:
        dtypes.insert(0, "float32")  # every ratio is relative to float32
    print(
        f"Precision benchmark: {folder.name} on {probe.device} ({torch.__version__}), {probe.threads} threads, "
        f"{args.new_tokens} new tokens (greedy, forced length), batches {batches}, best of {args.repeats}",
        flush=True,
    )
    measurements: list[Measurement] = []
    started = time.perf_counter()
    for dtype in dtypes:
        try:
            profile = resolve_runtime(RuntimeRequest(device=probe.device, dtype=dtype, threads=probe.threads))
        except RuntimeUnavailable as exc:
            print(f"  skipping {dtype}: {exc}", flush=True)
            continue
        measurements += measure(folder, profile, batches, args.new_tokens, args.repeats)
    print()
    print("\n".join(table(measurements)))
    print(f"\n(total {time.perf_counter() - started:.0f} s; speed and same ids are relative to float32, same batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
