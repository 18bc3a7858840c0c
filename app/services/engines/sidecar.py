"""A ``llama-server`` process next to the app: loopback port, parallel slots, watched and restarted.

Like the local store (``app/services/local_store.py``) the server runs as its own process and the app only
talks to it over HTTP on 127.0.0.1. ``start()`` picks a free port, launches

    llama-server -m <gguf> --host 127.0.0.1 --port <port> -t <threads> -np <slots> -c <ctx> --no-webui

and waits until ``GET /health`` answers 200. A watchdog thread then polls the process: when it exits
without being asked to (a crash, the OOM killer, a ``kill -9``), requests in flight fail and new ones get
``ModelUnavailable`` (HTTP 503) with ``SIDECAR_RESTARTING`` while the watchdog starts a fresh process on
a new port. ``stop()`` (called by ``manage.py serve`` on exit, and at interpreter exit) terminates it.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.errors import ModelUnavailable
from app.services.local_store import free_port

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
WATCH_INTERVAL_SECONDS = 0.2
RESTART_BACKOFF_SECONDS = 1.0
PR_SET_PDEATHSIG = 1
SIDECAR_RESTARTING = (
    "The llama.cpp server for {model!r} stopped unexpectedly and is being restarted. Please try again in a few seconds."
)
SIDECAR_FAILED = "The llama.cpp server for {model!r} could not be started: {reason}. See {log}."
SIDECAR_STOPPED = "The llama.cpp server for {model!r} is not running (the app is shutting down)."


@dataclass(frozen=True)
class SidecarConfig:
    """How to run one ``llama-server``: binary, model file, threads, parallel slots, total context."""

    binary: Path
    model_path: Path
    threads: int
    slots: int
    ctx: int
    log_file: Path
    model_name: str = ""

    def command(self, port: int) -> list[str]:
        return [
            str(self.binary),
            "-m",
            str(self.model_path),
            "--host",
            HOST,
            "--port",
            str(port),
            "-t",
            str(self.threads),
            "-np",
            str(self.slots),
            "-c",
            str(self.ctx),
            "--no-webui",
        ]


def health_ok(base_url: str, timeout: float = 1.0) -> bool:
    """True when ``GET /health`` answers 200 (503 while the model loads)."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LlamaSidecar:
    """One watched ``llama-server`` process. Thread-safe; ``ensure_started()`` is idempotent."""

    def __init__(self, config: SidecarConfig, *, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        self.config = config
        self.start_timeout = start_timeout
        self.name = config.model_name or config.model_path.name
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._stops = 0
        self._restarting = False
        self._last_error: str | None = None
        self._failed_at = 0.0
        self._watchdog: threading.Thread | None = None
        self._atexit_registered = False

    def __repr__(self) -> str:
        return f"LlamaSidecar({self.name!r}, port={self.port}, running={self.running})"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def ensure_started(self) -> str:
        """Start the server unless it runs; return its base URL. ``ModelUnavailable`` while it restarts."""
        if self.running and not self._restarting:
            return self.base_url
        if self._restarting:  # answer at once: the watchdog holds the lock while the new process starts
            raise ModelUnavailable(SIDECAR_RESTARTING.format(model=self.name))
        with self._lock:
            if self._stopping:
                raise ModelUnavailable(SIDECAR_STOPPED.format(model=self.name))
            if self._restarting or (self.process is not None and not self.running):
                raise ModelUnavailable(SIDECAR_RESTARTING.format(model=self.name))
            if not self.running:
                if self._last_error and time.monotonic() - self._failed_at < RESTART_BACKOFF_SECONDS * 5:
                    raise ModelUnavailable(self._failed(self._last_error))
                self._start_locked()
                self._ensure_watchdog()
        return self.base_url

    def exited_within(self, seconds: float) -> bool:
        """True when the server is down or exits within ``seconds``: a dying process closes its sockets
        a moment before it can be reaped, so a broken connection is seen before ``running`` turns false."""
        process = self.process
        if process is None or self._restarting:
            return True
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def base_url_or_raise(self) -> str:
        """The base URL of the running server; ``ModelUnavailable`` (503) when it is down or restarting."""
        if self.running and not self._restarting:
            return self.base_url
        if self._stopping:
            raise ModelUnavailable(SIDECAR_STOPPED.format(model=self.name))
        if self.process is None:
            return self.ensure_started()
        raise ModelUnavailable(SIDECAR_RESTARTING.format(model=self.name))

    def stop(self, *, final: bool = False) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s); the watchdog does not restart it.

        After a plain ``stop()`` (the model was unloaded) the next request starts it again; after
        ``stop(final=True)`` (the app exits) it stays down.
        """
        with self._lock:
            self._stopping = True
            self._stops += 1
            self._closed = self._closed or final
            process, self.process = self.process, None
            try:
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=5)
                    logger.info("llama-server for %s on port %s stopped", self.name, self.port)
            finally:
                self._stopping = self._closed

    def close(self) -> None:
        """Stop for good (``manage.py serve`` on exit, interpreter exit)."""
        self.stop(final=True)

    # -- internals --

    def _start_locked(self) -> None:
        """Launch on a fresh free port and wait for /health (the lock is held)."""
        config = self.config
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        port = free_port(HOST)
        command = config.command(port)
        env = {**os.environ, "LD_LIBRARY_PATH": _library_path(config.binary)}
        logger.info("Starting llama-server for %s on %s:%s: %s", self.name, HOST, port, " ".join(command))
        started = time.monotonic()
        with config.log_file.open("ab") as log:
            process = spawn(command, log=log, env=env)
        self.process, self.port = process, port
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True
        try:
            self._wait_until_healthy(process, started)
        except ModelUnavailable:
            self.process = None  # the next request (or the watchdog) tries again
            self._failed_at = time.monotonic()
            raise
        logger.info("llama-server for %s ready on port %s in %.2f s", self.name, port, time.monotonic() - started)

    def _wait_until_healthy(self, process: subprocess.Popen[bytes], started: float) -> None:
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reason = f"it exited with code {process.returncode} while starting"
                self._last_error = reason
                raise ModelUnavailable(self._failed(reason))
            if health_ok(self.base_url, timeout=0.5):
                self._last_error = None
                return
            time.sleep(0.05)
        process.kill()
        process.wait(timeout=5)
        reason = f"it did not answer /health within {self.start_timeout:.0f} s"
        self._last_error = reason
        raise ModelUnavailable(self._failed(reason))

    def _failed(self, reason: str) -> str:
        return SIDECAR_FAILED.format(model=self.name, reason=reason, log=self.config.log_file)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name=f"llama-watch:{self.name}", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        while not self._closed:
            time.sleep(WATCH_INTERVAL_SECONDS)
            process = self.process
            if self._stopping or process is None or process is not self.process or process.poll() is None:
                continue
            self._restart_after_exit(process.returncode)

    def _restart_after_exit(self, code: int | None) -> None:
        logger.warning("llama-server for %s exited unexpectedly (code %s); restarting it", self.name, code)
        self._restarting = True
        stops = self._stops
        try:
            while not self._closed:
                with self._lock:
                    if self._stopping or self._stops != stops:  # stopped on purpose meanwhile
                        return
                    try:
                        self._start_locked()
                    except ModelUnavailable as exc:
                        logger.error("Restarting llama-server for %s failed: %s", self.name, exc.message)
                    else:
                        self.restarts += 1
                        return
                time.sleep(RESTART_BACKOFF_SECONDS)
        finally:
            self._restarting = False


class _Spawner:
    """Starts child processes from one long-lived thread, so Linux can stop them when this process dies.

    ``PR_SET_PDEATHSIG`` sends the child SIGTERM when the *thread* that forked it exits: forking from a
    request thread would kill the sidecar after that request, forking from this daemon thread ties the
    sidecar to the whole process (even a ``kill -9`` of the app leaves no orphan server behind).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def run(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._jobs, self._pid = queue.SimpleQueue(), os.getpid()
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,), name="sidecar-spawner")
                self._thread.daemon = True
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((start, future))
        return future.result()

    @staticmethod
    def _serve(
        jobs: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]],
    ) -> None:
        while True:
            start, future = jobs.get()
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


_spawner = _Spawner()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command: list[str], *, log: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``Popen`` a server whose output goes to ``log``; on Linux it is stopped when this process dies."""
    linux = sys.platform.startswith("linux")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent if linux else None,  # only prctl between fork and exec: no locks
        )

    return _spawner.run(start) if linux else start()


def _library_path(binary: Path) -> str:
    """The binary's folder first, so the shared libraries built next to it are found wherever it was copied."""
    current = os.environ.get("LD_LIBRARY_PATH", "")
    folder = str(binary.resolve().parent)
    return folder if not current else f"{folder}{os.pathsep}{current}"
