"""``python manage.py serve``: everything the README's run command needs, then the web server.

Starts the local store when no MONGO_URI is set, applies migrations, ensures the MongoDB
indexes, collects static files, prepares and warms up the model, then runs Django's threaded
server without the autoreloader (so the model is loaded in this one process).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import ModelUnavailable, StoreUnavailable
from app.services.device import RuntimeUnavailable, describe_runtime
from app.services.local_store import LocalStore, start_local_store
from app.services.mongo_repo import get_repository
from app.services.records import replay_leftovers
from app.services.warmup import warm_up, warmup_enabled


class Command(BaseCommand):
    help = "Start the local store (if needed), prepare the app and the model, and serve on 127.0.0.1:8000."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Address and port to serve on.")
        parser.add_argument(
            "--no-warmup", action="store_true", help="Load the model on the first request instead (as HF_WARMUP=0)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self._check_runtime()
        store = self._start_store()
        try:
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_indexes()
            call_command("collectstatic", interactive=False, verbosity=0)
            if not options["no_warmup"] and warmup_enabled(serve_command=True):
                self._warm_up()
            replay_leftovers()
            self.stdout.write(self.style.SUCCESS(f"Serving on http://{options['addrport']}/ (Ctrl+C to stop)"))
            call_command("runserver", options["addrport"], use_reloader=False, use_threading=True)
        finally:
            if store is not None:
                store.stop()

    def _start_store(self) -> LocalStore | None:
        if not settings.MONGO_LOCAL:
            return None
        store = start_local_store(
            host="127.0.0.1",
            port=settings.LOCAL_MONGO_PORT,
            storage_dir=settings.DATA_DIR / "mongo",
            log_file=settings.DATA_DIR / "logs" / "secantusd.log",
        )
        self.stdout.write(f"Local MongoDB store: {store.uri} (data in {settings.DATA_DIR / 'mongo'})")
        return store

    def _ensure_indexes(self) -> None:
        try:
            get_repository().ensure_indexes()
        except StoreUnavailable as exc:
            self.stderr.write(self.style.WARNING(f"Indexes not ensured: {exc.message}"))

    def _check_runtime(self) -> None:
        """A device or precision this machine cannot run (HF_DEVICE/HF_DTYPE) stops start-up here."""
        try:
            profile = describe_runtime()
        except RuntimeUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Model runtime: {profile.describe()}")

    def _warm_up(self) -> None:
        self.stdout.write("Loading the model (the first start converts the bundled model once, ~15 s)…")
        try:
            warm_up(progress=self.stdout.write)
        except ModelUnavailable as exc:
            self.stderr.write(self.style.WARNING(f"Model not loaded: {exc.message}"))
