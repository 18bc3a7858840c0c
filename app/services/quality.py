"""Quality guard: how much a cheaper precision changes the answers, and how much faster it is.

The same fixed prompts run greedily through two copies of the configured model, loaded by the
serving code path (``NLPService``): float32 (the reference) and the chosen precision. For each
prompt we compare the generated token ids and the text; the summary gives the exact-match rate,
the token-level overlap and the per-token speed ratio, so a user can judge the trade-off before
switching ``HF_DTYPE``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.services.device import RuntimeProfile, RuntimeRequest, run_off_main_thread
from app.services.engines.transformers_model import LoadedModel
from app.services.engines.transformers_service import NLPService

logger = logging.getLogger(__name__)

QUALITY_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Name three primary colors.",
    "Write one sentence about the ocean.",
    "What is 12 plus 30?",
    "Translate 'good morning' into Spanish.",
    "Give me a synonym for 'happy'.",
    "Explain in one sentence what a computer does.",
    "List two benefits of regular exercise.",
    "Who wrote Romeo and Juliet?",
    "Describe the color of the sky on a clear day.",
)
DEFAULT_MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class Generation:
    """One greedy answer: the new token ids (end-of-sequence excluded), the text and the time it took."""

    token_ids: tuple[int, ...]
    text: str
    seconds: float


@dataclass(frozen=True)
class PromptComparison:
    prompt: str
    reference: Generation
    candidate: Generation

    @property
    def exact_match(self) -> bool:
        return self.reference.token_ids == self.candidate.token_ids or self.reference.text == self.candidate.text

    @property
    def prefix_agreement(self) -> float:
        """Share of positions generated identically before the first difference (1.0 = same tokens)."""
        return prefix_agreement(self.reference.token_ids, self.candidate.token_ids)

    @property
    def token_overlap(self) -> float:
        """F1 of the two bags of tokens (order ignored)."""
        return token_overlap(self.reference.token_ids, self.candidate.token_ids)


@dataclass(frozen=True)
class QualityReport:
    reference_runtime: RuntimeProfile
    candidate_runtime: RuntimeProfile
    rows: tuple[PromptComparison, ...]

    @property
    def exact_matches(self) -> int:
        return sum(row.exact_match for row in self.rows)

    @property
    def exact_match_rate(self) -> float:
        return self.exact_matches / len(self.rows) if self.rows else 1.0

    @property
    def mean_prefix_agreement(self) -> float:
        return _mean([row.prefix_agreement for row in self.rows])

    @property
    def mean_token_overlap(self) -> float:
        return _mean([row.token_overlap for row in self.rows])

    @property
    def reference_ms_per_token(self) -> float:
        return ms_per_token([row.reference for row in self.rows])

    @property
    def candidate_ms_per_token(self) -> float:
        return ms_per_token([row.candidate for row in self.rows])

    @property
    def speed_ratio(self) -> float:
        """float32 time per token ÷ candidate time per token (above 1: the candidate is faster)."""
        candidate = self.candidate_ms_per_token
        return self.reference_ms_per_token / candidate if candidate > 0 else 0.0


def prefix_agreement(reference: Sequence[int], candidate: Sequence[int]) -> float:
    longest = max(len(reference), len(candidate))
    if longest == 0:
        return 1.0
    same = 0
    for left, right in zip(reference, candidate, strict=False):
        if left != right:
            break
        same += 1
    return same / longest


def token_overlap(reference: Sequence[int], candidate: Sequence[int]) -> float:
    if not reference and not candidate:
        return 1.0
    common = sum((Counter(reference) & Counter(candidate)).values())
    return 2 * common / (len(reference) + len(candidate))


def ms_per_token(generations: Sequence[Generation]) -> float:
    tokens = sum(max(1, len(item.token_ids)) for item in generations)
    return 1000 * sum(item.seconds for item in generations) / tokens if tokens else 0.0


def run_quality_guard(
    *,
    model: str,
    task: str,
    candidate: RuntimeRequest,
    prompts: Sequence[str] = QUALITY_PROMPTS,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    resolve_source: Callable[[], str | Path] | None = None,
    token: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> QualityReport:
    """Run ``prompts`` greedily in float32 and in ``candidate``'s precision (same device and threads).

    Raises ``ModelUnavailable`` (e.g. a missing device) before any prompt runs.
    """
    say = progress or logger.info
    reference = RuntimeRequest(device=candidate.device, dtype="float32", threads=candidate.threads)
    services = [
        NLPService(model=model, task=task, token=token, runtime=request, resolve_source=resolve_source)
        for request in (reference, candidate)
    ]
    try:
        for service in services:
            seconds = service.warm_up()
            assert service.runtime is not None
            say(f"Loaded {service.runtime.dtype} copy in {seconds:.2f} s ({service.runtime.describe()}).")
            greedy_generation(service, prompts[0], max_new_tokens=4)  # first call pays one-off costs
        rows = []
        for index, prompt in enumerate(prompts):
            # Alternate which copy goes first so neither always runs on a warmer cache.
            order = services if index % 2 == 0 else services[::-1]
            results = {
                id(service): greedy_generation(service, prompt, max_new_tokens=max_new_tokens) for service in order
            }
            rows.append(
                PromptComparison(prompt=prompt, reference=results[id(services[0])], candidate=results[id(services[1])])
            )
            say(f"Prompt {index + 1}/{len(prompts)} done.")
        runtimes = [service.runtime for service in services]
        assert runtimes[0] is not None and runtimes[1] is not None
        return QualityReport(reference_runtime=runtimes[0], candidate_runtime=runtimes[1], rows=tuple(rows))
    finally:
        for service in services:
            service.unload()


def greedy_generation(service: NLPService, prompt: str, *, max_new_tokens: int) -> Generation:
    """Greedy decoding on the service's loaded model, timing ``generate()`` only.

    Runs in its own thread, as the server's inference worker does (see ``run_off_main_thread``).
    """
    return run_off_main_thread(lambda: _greedy_generation(service, prompt, max_new_tokens=max_new_tokens))


def _greedy_generation(service: NLPService, prompt: str, *, max_new_tokens: int) -> Generation:
    import torch

    loaded = service.loaded_model()
    inputs = service.encode_prompt(loaded, prompt)
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    started = time.perf_counter()
    with torch.inference_mode():
        output = loaded.model.generate(  # type: ignore[operator]
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=loaded.pad_token_id
        )
    seconds = time.perf_counter() - started
    start = prompt_tokens if loaded.kind == "causal" else 1
    token_ids = _until_eos(loaded, output[0][start:].tolist())
    text = str(loaded.tokenizer.decode(list(token_ids), skip_special_tokens=True)).strip()
    return Generation(token_ids=token_ids, text=text, seconds=seconds)


def format_report(report: QualityReport, *, show_text: bool = False, prompt_width: int = 44) -> list[str]:
    """The table and the summary, as lines of plain text."""
    ref, cand = report.reference_runtime.dtype, report.candidate_runtime.dtype
    ref_col, cand_col = f"{ref} ms/tok", f"{cand} ms/tok"
    lines = [
        f"{'#':>2}  {'same':<4}  {'prefix':>6}  {'overlap':>7}  {ref_col:>16}  {cand_col:>16}  prompt",
    ]
    for number, row in enumerate(report.rows, start=1):
        lines.append(
            f"{number:>2}  {'yes' if row.exact_match else 'no':<4}  {row.prefix_agreement:>6.0%}  "
            f"{row.token_overlap:>7.0%}  {ms_per_token([row.reference]):>16.1f}  "
            f"{ms_per_token([row.candidate]):>16.1f}  {_shorten(row.prompt, prompt_width)}"
        )
        if show_text and not row.exact_match:
            lines.append(f"      {ref}: {_shorten(row.reference.text, 100)}")
            lines.append(f"      {cand}: {_shorten(row.candidate.text, 100)}")
    ratio = report.speed_ratio
    verdict = f"{ratio:.2f}× {'faster' if ratio >= 1 else 'slower'}" if ratio else "n/a"
    lines += [
        "",
        f"Exact-match rate        {report.exact_matches}/{len(report.rows)} ({report.exact_match_rate:.0%})",
        f"Token prefix agreement  {report.mean_prefix_agreement:.1%} (mean share before the first difference)",
        f"Token overlap (F1)      {report.mean_token_overlap:.1%} (mean, order ignored)",
        f"Per-token time          {ref} {report.reference_ms_per_token:.1f} ms · {cand} "
        f"{report.candidate_ms_per_token:.1f} ms → {cand} is {verdict}",
    ]
    return lines


def _until_eos(loaded: LoadedModel, ids: list[int]) -> tuple[int, ...]:
    kept: list[int] = []
    for token_id in ids:
        if token_id in loaded.eos_token_ids:
            break
        kept.append(token_id)
    return tuple(kept)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 1.0


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
