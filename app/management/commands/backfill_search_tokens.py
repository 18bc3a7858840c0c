"""``python manage.py backfill_search_tokens``: give older interactions their search fields.

Interactions stored before search existed lack ``owner``, ``search_tokens`` and ``search_keys``;
they do not show up in history pages or searches until this has run. Safe to run again: it only
touches documents that still miss the fields.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import StoreUnavailable
from app.management.commands._progress import ProgressBar
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
            if missing == 0:
                self.stdout.write(self.style.SUCCESS("Every interaction already has its search tokens."))
                return
            bar = ProgressBar(total=missing, label="Backfilling", out=self.stdout)
            done = repository.backfill_search_fields(batch=max(1, options["batch"]), progress=bar.advance)
            bar.finish()
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Added search tokens to {done} interactions."))
