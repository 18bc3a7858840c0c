"""Playwright + Debian chromium fixtures for browser tests (``playwright install`` cannot run here)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from app.services.local_store import free_port

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Playwright's sync API runs an event loop in the test thread; Django's live server thread does the
# real work, so Django's "no sync calls inside an event loop" guard only gets in the way here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"chromium is required for browser tests in CI but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} not installed (python3 dev.py test installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


class AsgiLiveServer:
    """The app under uvicorn in a thread of the test process, as ``manage.py serve`` runs it (ASGI).

    Django's ``live_server`` is a WSGI server, where an async streaming response is read to its end
    before anything is sent; the answer feed needs an ASGI server to stream. ``restart()`` drops every
    open connection (as a server restart or a network cut does) and serves again on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            ASGIStaticFilesHandler(get_asgi_application()),  # type: ignore[no-untyped-call]
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, name="asgi-live-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def asgi_live_server(transactional_db: None) -> Iterator[AsgiLiveServer]:
    server = AsgiLiveServer()
    server.start()
    yield server
    server.stop()
