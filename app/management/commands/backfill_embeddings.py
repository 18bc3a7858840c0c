"""``python manage.py backfill_embeddings``: give every stored interaction its sentence embedding.

New interactions are embedded by a background thread right after they are stored; this catches up
on the rest (records older than semantic search, imports from another process, a queue that was
full, a changed ``SEARCH_EMBEDDER``) and rebuilds each owner's vocabulary for typo tolerance.
Shows progress; safe to stop and run again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import StoreUnavailable
from app.management.commands._progress import ProgressBar
from app.services.mongo_repo import get_repository
from app.services.search.indexer import BACKFILL_BATCH, count_missing, embed_missing
from app.services.search.semantic import EmbedderUnavailable, get_embedder
from app.services.search.vocabulary import rebuild_vocabulary


class Command(BaseCommand):
    help = "Compute the search embeddings (and vocabulary) of interactions that do not have them yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=BACKFILL_BATCH, help="texts per model call and write")
        parser.add_argument("--skip-vocabulary", action="store_true", help="do not rebuild the vocabularies")

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = get_embedder()
        repository = get_repository()
        try:
            repository.ensure_indexes()
            if not options["skip_vocabulary"]:
                words = rebuild_vocabulary(repository.collection, repository.vocabulary)
                self.stdout.write(f"Vocabulary rebuilt from {words} interactions.")
            if embedder is None:
                self.stdout.write("SEARCH_EMBEDDER is off: no embeddings computed.")
                return
            missing = count_missing(repository, embedder)
            if not missing:
                self.stdout.write(self.style.SUCCESS(f"Every interaction already has its {embedder.name} embedding."))
                return
            bar = ProgressBar(total=missing, label="Embedding", out=self.stdout)
            done = embed_missing(repository, embedder, batch=max(1, options["batch"]), progress=bar.update)
            bar.finish()
        except StoreUnavailable as exc:
            raise CommandError(exc.message) from exc
        except EmbedderUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Embedded {done} interactions with {embedder.name}."))
