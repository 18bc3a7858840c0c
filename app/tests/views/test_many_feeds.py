"""500 answer feeds open at once on one uvicorn process: all stay open, all get their events; its memory.

The feeds follow one generation that "another process" runs (a pending record the test writes with
PyMongo), so the server follows the store with one thread for the record and one coroutine per feed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.contrib.sessions.backends.signed_cookies import SessionStore

from app.domain.interaction import Scope
from app.services.local_store import free_port
from app.tests.generating_record import GeneratingRecord

pytestmark = pytest.mark.usefixtures("store_settings")

ROOT = Path(__file__).resolve().parents[3]
FEEDS = 500
VISITOR = "many-feeds-visitor"
SECRET = "many-feeds-test-secret-key-not-for-production-use-0123456789"


@pytest.fixture
def server(tmp_path: Path, mongo_uri: str) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "MONGO_"))}
    env.update(
        ENV_FILE=str(env_file),
        DATA_DIR=str(tmp_path / "data"),
        DJANGO_SETTINGS_MODULE="app.tests.feeds_settings",
        SECRET_KEY=SECRET,
        DEBUG="1",
        HF_WARMUP="0",
        MONGO_URI=mongo_uri,
        MONGO_DB_NAME=settings.MONGO_DB_NAME,
    )
    command = [sys.executable, "-m", "uvicorn", "django_hf_ml.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "off", "--log-level", "warning", "--timeout-graceful-shutdown", "1"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):  # noqa: S310 (loopback test server)
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"uvicorn did not start: {process.communicate()[1]}")
            time.sleep(0.2)
    yield url, psutil.Process(process.pid)
    process.terminate()
    process.wait(timeout=30)


def visitor_cookie() -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "SECRET_KEY", SECRET)
        session = SessionStore()
        session["visitor_id"] = VISITOR
        session.save()
        return str(session.session_key)


class Feed:
    """One open SSE connection, read as a browser would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.seen = reader, writer, ""

    @classmethod
    async def open(cls, port: int, path: str, cookie: str) -> Feed:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        writer.write(f"{request}Cookie: {settings.SESSION_COOKIE_NAME}={cookie}\r\n\r\n".encode())
        await writer.drain()
        return cls(reader, writer)

    async def until(self, marker: str) -> None:
        while marker not in self.seen:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise AssertionError(f"feed closed before {marker!r}: {self.seen[-300:]!r}")
            self.seen += chunk.decode()

    def close(self) -> None:
        self.writer.close()


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def test_500_open_feeds_on_one_uvicorn_process_all_get_their_events(
    server: tuple[str, psutil.Process], capsys: pytest.CaptureFixture[str]
) -> None:
    url, process = server
    port = int(url.rpartition(":")[2])
    record = GeneratingRecord(Scope(session_id=VISITOR), prompt="Followed by many", output="Hello")
    cookie = visitor_cookie()
    path = f"/stream/{record.id}/events"

    async def scenario() -> tuple[float, float, int]:
        warm = await Feed.open(port, path, cookie)  # one feed first: code paths and pools warmed up
        await warm.until("data: Hello")
        before = rss_mib(process)
        feeds = await asyncio.gather(*(Feed.open(port, path, cookie) for _ in range(FEEDS)))
        await asyncio.gather(*(feed.until("data: Hello") for feed in feeds))  # the text so far, on every feed
        during = rss_mib(process)
        connections = sum(1 for c in process.net_connections(kind="tcp") if c.laddr.port == port and c.raddr)
        feeds.append(warm)
        await asyncio.to_thread(record.write, " world")
        await asyncio.gather(*(feed.until("data:  world") for feed in feeds))  # the live rest, on every feed
        await asyncio.to_thread(record.end)
        await asyncio.gather(*(feed.until("event: done") for feed in feeds))
        for feed in feeds:
            assert f'data-interaction-id="{record.id}"' in feed.seen
            assert "id: 11\n" in feed.seen  # "Hello world": 11 characters sent
            feed.close()
        return before, during, connections

    started = time.monotonic()
    before, during, connections = asyncio.run(asyncio.wait_for(scenario(), timeout=55))
    assert connections >= FEEDS  # all of them held open at once by the one process
    with capsys.disabled():  # the figure the README quotes, shown on every run
        print(
            f"\n{FEEDS} open feeds on one uvicorn process: RSS {before:.1f} MiB before, "
            f"{during:.1f} MiB with them open "
            f"(+{during - before:.1f} MiB, {(during - before) * 1024 / FEEDS:.0f} KiB a feed); "
            f"{time.monotonic() - started:.1f} s in all"
        )
