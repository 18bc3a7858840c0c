"""``python manage.py serve``: everything the README's run command needs, then the web server.

Starts the local store when no MONGO_URI is set, applies migrations, ensures the MongoDB
indexes, collects static files, prepares and warms up the model, then serves the ASGI application
with uvicorn in this one process (so the model is loaded once, and an open answer feed is a
coroutine, not a thread). Static files are served by whitenoise's middleware, as in production.
SIGTERM or Ctrl+C stops it cleanly: open feeds get ``GRACEFUL_SECONDS``, then the local store stops.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import uvicorn
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import ModelUnavailable, StoreUnavailable
from app.services.device import RuntimeUnavailable, describe_runtime
from app.services.engines.choice import close_engine_services, describe_default_engine
from app.services.local_store import LocalStore, start_local_store
from app.services.mongo_repo import get_repository
from app.services.serving import start_serving_process
from app.services.warmup import warm_up, warmup_enabled

GRACEFUL_SECONDS = 3  # an SSE feed never ends by itself: shutdown closes it after this long


def parse_addrport(addrport: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"``, ``"[::1]:8000"`` or ``"8000"`` as (host, port), as runserver reads them."""
    host, _, port = addrport.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise CommandError(f"{addrport!r} is not an address:port or port number.")
    return (host.strip("[]") or "127.0.0.1"), int(port)


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
            start_serving_process()  # outbox replay and the reaper of dead generations, as in every worker
            self.stdout.write(self.style.SUCCESS(f"Serving on http://{options['addrport']}/ (Ctrl+C to stop)"))
            host, port = parse_addrport(options["addrport"])
            self._serve(host, port)
        finally:
            close_engine_services()  # stops the llama-server sidecar
            if store is not None:
                store.stop()

    def _serve(self, host: str, port: int) -> None:
        config = uvicorn.Config(
            get_asgi_application(),
            host=host,
            port=port,
            lifespan="off",  # Django has no lifespan events
            log_config=None,  # Django's LOGGING already configures the root logger
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        uvicorn.Server(config).run()

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
        self.stdout.write(f"Engine: {describe_default_engine()}")

    def _warm_up(self) -> None:
        self.stdout.write("Loading the model (the first start converts the bundled model once, ~15 s)…")
        try:
            warm_up(progress=self.stdout.write)
        except ModelUnavailable as exc:
            self.stderr.write(self.style.WARNING(f"Model not loaded: {exc.message}"))
