"""``python manage.py ensure_indexes``: create the MongoDB indexes (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from app.errors import StoreUnavailable
from app.services.mongo_repo import get_repository


class Command(BaseCommand):
    help = "Create the MongoDB indexes the app relies on (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            names = get_repository().ensure_indexes()
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Indexes ready: {', '.join(names)}"))
