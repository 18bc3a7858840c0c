"""``python manage.py prepare_model``: convert the bundled model if needed, then load the model once.

Run it at deploy time so the first request does not pay for the one-time conversion (~15 s).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import ModelUnavailable
from app.services.bundled_model import ensure_bundled_model
from app.services.engines.choice import default_engine_facts, default_generation_service
from app.services.nlp_service import bundled_models_dir


class Command(BaseCommand):
    help = "Convert the bundled model if HF_MODEL is unset, then load the configured model once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-warmup", action="store_true", help="Only convert; do not load the model.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if not settings.HF_MODEL and default_engine_facts()["engine"] == "transformers":  # llamacpp reads GGUF
                self._prepare_bundled_model()
            if options["skip_warmup"]:
                self.stdout.write("Skipped the warm-up.")
                return
            self._warm_up()
        except ModelUnavailable as exc:
            raise CommandError(exc.message) from exc

    def _prepare_bundled_model(self) -> None:
        started = time.perf_counter()
        folder = ensure_bundled_model(bundled_models_dir())
        self.stdout.write(f"Bundled model ready in {folder} ({time.perf_counter() - started:.1f} s).")

    def _warm_up(self) -> None:
        service = default_generation_service()
        seconds = service.warm_up()
        self.stdout.write(self.style.SUCCESS(f"Loaded {service.model} ({service.task}) in {seconds:.2f} s."))
