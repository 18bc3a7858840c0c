"""Durable generation figures for bench/generation_bench.py: store writes per token, checkpoint overhead.

The same prompts are answered alternately two ways, one at a time, on the already warm model:

* bare — ``service.submit()`` straight to the inference worker: no record at all;
* durable — ``generation.start_stream()``: the pending record written ahead, a checkpoint every
  ``GENERATION_CHECKPOINT_SECONDS`` while it runs (partial text, heartbeat, Stop read back), the
  final record replacing it.

Overhead = median over the prompts of (durable latency / bare latency of the same prompt, run right
after each other) - 1, both measured from the call to the end of the request; the checkpoint thread's
own time in store round trips is printed too (it runs beside the model, not on its thread).
Writes per generated token = (1 write-ahead + checkpoints + 1 final) / output tokens.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DurableFigures:
    requests: int
    tokens: int
    writes: int
    checkpoints: int
    bare_latency: float
    durable_latency: float
    pair_ratio: float  # median of durable / bare per prompt
    store_seconds: float  # checkpoint round trips, all streams

    @property
    def writes_per_token(self) -> float:
        return self.writes / self.tokens if self.tokens else float("nan")

    @property
    def overhead_pct(self) -> float:
        return 100 * (self.pair_ratio - 1)


class NoEos:
    """Every answer runs to ``max_new_tokens`` (both ways alike), so each lasts several checkpoints."""

    def __init__(self, eos_ids: list[int]) -> None:
        self.eos_ids = eos_ids

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        scores[:, self.eos_ids] = -float("inf")
        return scores


def durable_figures(service: Any, prompts: list[str], max_new_tokens: int) -> DurableFigures:
    from app.services.engines.transformers_batch import LocalBackend

    LocalBackend.extra_logits_processors = (NoEos(sorted(service.loaded_model().eos_token_ids)),)
    try:
        return _measure(service, prompts, max_new_tokens)
    finally:
        LocalBackend.extra_logits_processors = ()


def _measure(service: Any, prompts: list[str], max_new_tokens: int) -> DurableFigures:
    from app.domain.generation import Ask, GenerationParams
    from app.domain.interaction import Scope
    from app.services import generation
    from app.services.live_generations import get_checkpointer

    params = GenerationParams(max_new_tokens=max_new_tokens)
    scope = Scope(session_id="durable-bench")
    bare: list[float] = []
    durable: list[float] = []
    tokens = checkpoints = 0
    store_seconds = 0.0
    for prompt in prompts:
        t0 = time.perf_counter()
        service.submit(prompt, params).wait(600)
        bare.append(time.perf_counter() - t0)

        before, busy = get_checkpointer().writes, get_checkpointer().busy_seconds
        t0 = time.perf_counter()
        stream = generation.start_stream(Ask(prompt=prompt, params=params, use_cache=False), scope)
        stream.ended.wait(600)
        durable.append(time.perf_counter() - t0)
        assert stream.interaction is not None and stream.interaction.status == "ok", stream.interaction
        tokens += stream.interaction.output_tokens
        checkpoints += get_checkpointer().writes - before
        store_seconds += get_checkpointer().busy_seconds - busy
    return DurableFigures(
        requests=len(prompts),
        tokens=tokens,
        writes=2 * len(prompts) + checkpoints,
        checkpoints=checkpoints,
        bare_latency=statistics.median(bare),
        durable_latency=statistics.median(durable),
        pair_ratio=statistics.median(d / b for d, b in zip(durable, bare, strict=True)),
        store_seconds=store_seconds,
    )


def print_durable(figures: DurableFigures) -> None:
    print(
        f"durable generation: {figures.requests} streamed answers, {figures.tokens} tokens, "
        f"{figures.writes} record writes ({figures.checkpoints} checkpoints) = "
        f"{figures.writes_per_token:.3f} writes per generated token; median latency "
        f"{figures.durable_latency * 1000:.0f} ms vs {figures.bare_latency * 1000:.0f} ms without a record "
        f"({figures.overhead_pct:+.1f} % per prompt, median); checkpoint round trips "
        f"{figures.store_seconds * 1000:.0f} ms in all, beside the model thread"
    )
