"""``manage.py serve`` runs the app under uvicorn (ASGI): pages, static files, the feed; SIGTERM stops it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from bson import ObjectId
from django.core.management.base import CommandError
from pymongo import MongoClient

from app.domain.ids import utc_now
from app.domain.interaction import STATUS_PENDING, Interaction
from app.management.commands.serve import parse_addrport
from app.services.local_store import free_port
from app.services.mongo_documents import to_document
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


def test_serve_reaps_a_generation_an_earlier_process_left_pending(tmp_path: Path, mongo_uri: str) -> None:
    port = free_port()
    db_name = f"serve_reap_{port}"
    long_ago = utc_now() - timedelta(minutes=5)
    left = Interaction(
        prompt="cut short", output="half an ans", model="m", task="text-generation", session_id="s",
        status=STATUS_PENDING, worker="another-host:1", heartbeat_at=long_ago, created_at=long_ago,
    )  # fmt: skip
    collection = MongoClient(mongo_uri, tz_aware=True)[db_name]["interactions"]
    collection.insert_one(to_document(left))
    env = child_env(tmp_path, HF_WARMUP="0", MONGO_URI=mongo_uri, MONGO_DB_NAME=db_name)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--no-warmup"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        doc = collection.find_one({"_id": ObjectId(left.id)})
        while doc is not None and doc["status"] == STATUS_PENDING and time.monotonic() < deadline:
            time.sleep(0.5)
            doc = collection.find_one({"_id": ObjectId(left.id)})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert doc is not None and (doc["status"], doc["output"]) == ("interrupted", "half an ans")
