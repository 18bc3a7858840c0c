"""``python manage.py quality_guard``: float32 vs a cheaper precision on fixed prompts, before you switch.

Runs ~10 fixed prompts greedily through the configured model (HF_MODEL, or the bundled SmolLM2) in
float32 and in the chosen precision (``--dtype``, default ``HF_DTYPE``; int8 on a CPU when that is
float32/auto) on the same device, and prints the exact-match rate, the token-level overlap and the
per-token speed ratio.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import ModelUnavailable
from app.services.bundled_model import ensure_bundled_model
from app.services.device import RuntimeRequest, resolve_runtime
from app.services.nlp_service import bundled_models_dir
from app.services.quality import DEFAULT_MAX_NEW_TOKENS, QUALITY_PROMPTS, format_report, run_quality_guard
from django_hf_ml.choices import BUNDLED_MODEL_ID, CAUSAL_TASK
from django_hf_ml.envconfig import parse_device, parse_dtype, parse_threads


class Command(BaseCommand):
    help = "Compare float32 with a cheaper precision (int8, bfloat16, float16) on fixed prompts: agreement and speed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dtype", default="", help="Precision to check (default: HF_DTYPE; int8 on CPU if auto).")
        parser.add_argument("--device", default="", help="Device (default: HF_DEVICE).")
        parser.add_argument("--threads", default="", help="torch threads (default: HF_THREADS, else all cores).")
        parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="Tokens per answer.")
        parser.add_argument(
            "--prompts", type=int, default=len(QUALITY_PROMPTS), help=f"How many of the {len(QUALITY_PROMPTS)} prompts."
        )
        parser.add_argument("--show-text", action="store_true", help="Print both answers where they differ.")

    def handle(self, *args: Any, **options: Any) -> None:
        count, max_new_tokens = options["prompts"], options["max_new_tokens"]
        if not 1 <= count <= len(QUALITY_PROMPTS):
            raise CommandError(f"--prompts must be between 1 and {len(QUALITY_PROMPTS)}.")
        if not 1 <= max_new_tokens <= 1024:
            raise CommandError("--max-new-tokens must be between 1 and 1024.")
        candidate = self._candidate(options)
        model, task, resolve_source = self._model()
        self.stdout.write(
            f"Quality guard: {model} ({task}), greedy, up to {max_new_tokens} new tokens, {count} prompts: "
            f"float32 vs {candidate.dtype} on {candidate.device}"
        )
        try:
            report = run_quality_guard(
                model=model,
                task=task,
                candidate=candidate,
                prompts=QUALITY_PROMPTS[:count],
                max_new_tokens=max_new_tokens,
                resolve_source=resolve_source,
                token=settings.HF_API_TOKEN,
                progress=lambda line: self.stderr.write(line),
            )
        except ModelUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write("\n".join(format_report(report, show_text=options["show_text"])))

    def _candidate(self, options: dict[str, Any]) -> RuntimeRequest:
        """The precision to check, resolved on this machine (a missing device is an error here)."""
        try:
            device = parse_device(options["device"] or settings.HF_DEVICE)
            dtype = parse_dtype(options["dtype"] or settings.HF_DTYPE)
            threads = parse_threads(options["threads"]) if options["threads"] else settings.HF_THREADS
            resolved = resolve_runtime(RuntimeRequest(device=device, dtype=dtype, threads=threads))
        except ImproperlyConfigured as exc:  # a bad value, or a device/precision this machine cannot run
            raise CommandError(str(exc)) from exc
        chosen = resolved.dtype
        if chosen == "float32" and not options["dtype"]:
            chosen = "int8" if resolved.device == "cpu" else "float16"
            self.stderr.write(f"The configured precision is float32: checking {chosen} instead (use --dtype).")
        return RuntimeRequest(device=resolved.device, dtype=chosen, threads=resolved.threads)

    def _model(self) -> tuple[str, str, Any]:
        configured = (settings.HF_MODEL or "").strip()
        if configured:
            return configured, settings.HF_TASK, None
        return BUNDLED_MODEL_ID, CAUSAL_TASK, lambda: ensure_bundled_model(bundled_models_dir())
