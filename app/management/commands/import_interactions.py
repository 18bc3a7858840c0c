"""``python manage.py import_interactions FILE``: import a JSON Lines history export.

Each line is checked on its own; bad lines are reported with their number and reason and the rest
is imported. An id that is already stored is skipped, so running the same file twice adds nothing.
The interactions belong to ``--user-id`` (a Django user's id, their history on every device), or
to ``--session-id`` (a visitor id), or to a new visitor id that is printed at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.domain.interaction import Scope
from app.errors import StoreUnavailable
from app.management.commands._progress import ProgressBar
from app.services.history_import import import_jsonl
from app.services.mongo_repo import get_repository


def lines_with_progress(handle: BinaryIO, bar: ProgressBar) -> Iterator[bytes]:
    read = 0
    for number, line in enumerate(handle, start=1):
        read += len(line)
        if number % 1000 == 0:
            bar.update(read)
        yield line
    bar.update(read)


class Command(BaseCommand):
    help = "Import interactions from a JSON Lines file (validated line by line, idempotent by id)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a .jsonl file as written by the history export")
        owner = parser.add_mutually_exclusive_group()
        owner.add_argument("--user-id", help="import into this Django user's history")
        owner.add_argument("--session-id", help="import into this visitor id's history")
        parser.add_argument("--batch", type=int, default=500, help="interactions per write (default 500)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        session_id = options["session_id"] or uuid.uuid4().hex
        scope = Scope(session_id=session_id, user_id=options["user_id"])
        bar = ProgressBar(total=path.stat().st_size, label="Importing", out=self.stdout, unit=" bytes")
        try:
            get_repository().ensure_indexes()
            with path.open("rb") as handle:
                report = import_jsonl(
                    lines_with_progress(handle, bar), scope=scope, batch_size=max(1, options["batch"])
                )
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from exc
        bar.finish()
        for rejected in report.rejected:
            self.stdout.write(f"line {rejected.line}: {rejected.reason}")
        if report.rejected_count > len(report.rejected):
            self.stdout.write(f"… and {report.rejected_count - len(report.rejected)} more rejected lines")
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.inserted} imported, {report.already_present} already present, "
                f"{report.rejected_count} rejected, of {report.lines} lines."
            )
        )
        if not options["user_id"] and not options["session_id"]:
            self.stdout.write(f"Imported into the new visitor id {session_id} (pass --session-id or --user-id).")
