"""``manage.py serve`` runs the app under uvicorn (ASGI): pages, static files, the feed; SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from app.management.commands.serve import parse_addrport
from app.services.local_store import free_port
from app.tests.services.test_warmup import ROOT, _wait_for_ready, child_env


def get(url: str) -> tuple[int, dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback test server)
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()


def test_serve_is_uvicorn_serving_pages_static_files_and_the_feed(tmp_path: Path, mongo_uri: str) -> None:
    port = free_port()
    env = child_env(tmp_path, HF_WARMUP="0", MONGO_URI=mongo_uri, MONGO_DB_NAME=f"serve_{port}")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--no-warmup"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ready(f"{base}/healthz", process, lines)
        status, headers, page = get(f"{base}/")
        assert status == 200 and headers["server"] == "uvicorn"
        script = re.search(r'src="(/static/app/stream[^"]*\.js)"', page)
        assert script, page[:500]
        status, _, body = get(f"{base}{script.group(1)}")  # whitenoise serves static files under ASGI
        assert status == 200 and "Last-Event-ID" in body
        status, headers, feed = get(f"{base}/stream/ffff/events")
        assert headers["content-type"] == "text/event-stream" and "event: done" in feed
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        reader.join(timeout=10)
    assert code == 0, "".join(lines)
    assert f"Serving on http://127.0.0.1:{port}/" in "".join(lines)


@pytest.mark.parametrize(
    ("addrport", "expected"),
    [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("8001", ("127.0.0.1", 8001)), ("[::1]:8002", ("::1", 8002))],
)
def test_serve_reads_addr_port_as_runserver_did(addrport: str, expected: tuple[str, int]) -> None:
    assert parse_addrport(addrport) == expected


def test_serve_refuses_a_bad_port() -> None:
    with pytest.raises(CommandError):
        parse_addrport("127.0.0.1:http")
