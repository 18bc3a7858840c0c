"""``python manage.py replay_outbox``: write interactions kept in the local outbox to MongoDB now."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.services.outbox import OutboxError, get_outbox


class Command(BaseCommand):
    help = "Replay interactions waiting in the local outbox to MongoDB, oldest first (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait",
            type=int,
            default=0,
            metavar="SECONDS",
            help="Keep retrying for up to this many seconds while MongoDB is unreachable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outbox = get_outbox()
        deadline = time.monotonic() + max(0, options["wait"])
        total = failed = 0
        while True:
            try:
                result = outbox.replay()
            except OutboxError as exc:
                raise CommandError(f"The outbox at {outbox.path} cannot be read: {exc}") from exc
            total += result.replayed
            failed += result.failed
            if result.store_error is None or time.monotonic() >= deadline:
                break
            time.sleep(1)
        self.stdout.write(f"Replayed {total} interaction(s) from {outbox.path}; {result.remaining} still waiting.")
        if failed:
            self.stderr.write(self.style.WARNING(f"{failed} interaction(s) were refused for good (kept as failed)."))
        if result.store_error is not None:
            raise CommandError(f"MongoDB is unreachable: {result.store_error} Run the command again later.")
        self.stdout.write(self.style.SUCCESS("Outbox empty."))
