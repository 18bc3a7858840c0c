"""Real serving processes for the crash tests (``app/tests/generation_process.py``), and their store.

Each process is started with the test session's store, database, tiny model and one shared data
folder (the outbox), talks JSON lines over its stdin/stdout, and is ended with real signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def serving_env(
    *, mongo_uri: str, db_name: str, model: Path, data_dir: Path, token_delay: float, **extra: str
) -> dict[str, str]:
    """The environment of a serving process: this test's store and database, the tiny model, one data folder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "MONGO_", "GENERATION_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="django_hf_ml.settings",
        ENV_FILE=str(data_dir / "no.env"),
        DATA_DIR=str(data_dir),
        OUTBOX_PATH=str(data_dir / "outbox.sqlite3"),
        MONGO_URI=mongo_uri,
        MONGO_DB_NAME=db_name,
        MONGO_COLLECTION="interactions",
        HF_MODEL=str(model),
        HF_TASK="text-generation",
        HF_DEVICE="cpu",
        HF_ENGINE="transformers",
        HF_BATCHING="static",  # the slowed-down steps of these tests run in the static batcher
        HF_THREADS="1",
        HF_WARMUP="0",
        HF_QUEUE_MAX="1000",
        RATE_LIMIT_PER_MINUTE="0",
        GENERATION_REAP_SECONDS="0.5",
        GEN_TOKEN_DELAY=str(token_delay),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class ServingProcess:
    """One ``generation_process`` child: send an order, read its one-line answer, kill it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.tests.generation_process"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.is_ready = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next answer line, or None when the process ended (or said nothing in time)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if line is None else json.loads(line)

    def wait_ready(self, timeout: float = 180.0) -> None:
        answer = self.read(timeout)
        assert answer is not None and answer.get("ready") == self.pid, f"serving process did not start: {answer}"
        self.is_ready = True

    def poll_ready(self) -> bool:
        """Non-blocking: whether the process has said it is ready."""
        if not self.is_ready:
            answer = self.read(0)
            if answer is not None:
                self.is_ready = answer.get("ready") == self.pid
        return self.is_ready

    def send(self, order: dict[str, Any], timeout: float = 30.0) -> dict[str, Any] | None:
        """Send one order; its answer, or None when the process died before answering."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(order) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return None
        return self.read(timeout)

    def kill(self) -> None:
        """SIGKILL (no clean-up of any kind), then reap the child so its pid is really gone."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def close(self) -> None:
        self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log.close()


def wait_for(check: Callable[[], T | None], *, timeout: float, interval: float = 0.05) -> T | None:
    """Poll ``check`` until it returns something (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
