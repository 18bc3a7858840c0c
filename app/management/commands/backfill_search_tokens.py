"""``python manage.py backfill_search_tokens``: give older interactions their search fields.

Interactions stored before search existed lack ``owner``, ``search_tokens`` and ``search_keys``;
they do not show up in history pages or searches until this has run. It also rebuilds the day
documents the history pages use to skip empty stretches. Safe to run again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import StoreUnavailable
from app.management.commands._progress import ProgressBar
from app.services.mongo_admin import backfill_search_fields, rebuild_days
from app.services.mongo_repo import get_repository


class Command(BaseCommand):
    help = "Add search tokens (and the owner key) to interactions stored before they existed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=500, help="documents per write (default 500)")

    def handle(self, *args: Any, **options: Any) -> None:
        repository = get_repository()
        try:
            repository.ensure_indexes()
            missing = repository.collection.count_documents({"search_keys": {"$exists": False}})
            done = 0
            if missing:
                bar = ProgressBar(total=missing, label="Backfilling", out=self.stdout)
                done = backfill_search_fields(repository, batch=max(1, options["batch"]), progress=bar.advance)
                bar.finish()
            days = rebuild_days(repository)
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from exc
        if missing:
            self.stdout.write(self.style.SUCCESS(f"Added search tokens to {done} interactions."))
        else:
            self.stdout.write(self.style.SUCCESS("Every interaction already has its search tokens."))
        self.stdout.write(f"Day index checked for {days} interactions.")
