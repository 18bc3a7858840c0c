"""Optional model warm-up at server start (``HF_WARMUP``), in the serving process only.

- ``manage.py serve`` warms up synchronously before it serves (``HF_WARMUP`` empty or ``1``;
  ``HF_WARMUP=0`` or ``--no-warmup`` skips it) and prints a progress line.
- ``django_hf_ml/wsgi.py`` and ``asgi.py`` call ``warm_up_serving_process()`` after the application
  object exists. Gunicorn (without ``--preload``) and uvicorn import them in each worker, which is the
  process that serves, so with ``HF_WARMUP=1`` each worker loads the model in a background thread while
  ``/readyz`` answers 503. Management commands never import these modules, so ``check``, ``migrate``… load
  nothing. If a process forks after its warm-up started (``gunicorn --preload``), the child starts its own
  warm-up and a warning says to drop ``--preload``.
- With ``HF_WARMUP=1`` the device/precision are checked before the thread starts: a missing device stops
  the worker from booting with a message that names the variable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from app.errors import ModelUnavailable
from app.services import nlp_service
from app.services.device import describe_runtime
from app.services.engines.choice import default_generation_service

logger = logging.getLogger(__name__)

WarmupPhase = Literal["off", "loading", "ready", "failed"]
Progress = Callable[[str], None]
THREAD_NAME = "hf-warmup"
PRELOAD_WARNING = (
    "This process forked after the model warm-up started (gunicorn --preload?). The child loads its own model; "
    "run gunicorn without --preload so the model is loaded only in the workers."
)


@dataclass(frozen=True)
class WarmupStatus:
    """What ``/readyz`` and ``doctor`` report about the model's warm-up."""

    enabled: bool  # HF_WARMUP=1, or `serve` warmed up before serving
    phase: WarmupPhase
    seconds: float | None = None  # load time once ready
    error: str | None = None  # the ModelUnavailable message when it failed

    @property
    def blocks_readiness(self) -> bool:
        """With warm-up on, the process is not ready until the model is."""
        return self.enabled and self.phase != "ready"

    def to_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "phase": self.phase, "seconds": self.seconds, "error": self.error}


class _Tracker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled = False
        self.phase: WarmupPhase = "off"
        self.seconds: float | None = None
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()


_tracker = _Tracker()
_fork_hook_registered = False


def warmup_setting() -> bool | None:
    """``HF_WARMUP``: True, False, or None when unset (then only ``serve`` warms up)."""
    value = getattr(settings, "HF_WARMUP", None)
    return None if value is None else bool(value)


def warmup_enabled(*, serve_command: bool = False) -> bool:
    """Whether this kind of process should load the model at start."""
    setting = warmup_setting()
    return serve_command if setting is None else setting


def warmup_status() -> WarmupStatus:
    """The current warm-up state of this process.

    A failed warm-up counts as ready once a later request has loaded the model (loads are retried after
    a short back-off), so ``/readyz`` does not stay 503 after the cause was fixed.
    """
    with _tracker.lock:
        status = WarmupStatus(
            enabled=_tracker.enabled, phase=_tracker.phase, seconds=_tracker.seconds, error=_tracker.error
        )
    if status.phase == "failed" and _default_model_loaded():
        with _tracker.lock:
            _tracker.phase, _tracker.error = "ready", None
        return WarmupStatus(enabled=status.enabled, phase="ready", seconds=status.seconds)
    return status


def _default_model_loaded() -> bool:
    try:
        return bool(default_generation_service().is_loaded)
    except Exception:  # an unsupported task: reported elsewhere
        return False


def warm_up(*, progress: Progress | None = None) -> float:
    """Load the configured model now (idempotent); return the seconds spent, 0.0 when it was loaded.

    Raises ``ModelUnavailable``; the status records the failure either way.
    """

    say = progress or logger.info
    service = default_generation_service()  # on its engine: a llama-server sidecar starts here
    with _tracker.lock:
        _tracker.enabled = True
        if _tracker.phase != "ready":
            _tracker.phase = "loading"
    if not service.is_loaded:
        say(f"Warming up the model {service.model} ({service.task}) in process {os.getpid()}…")
    try:
        seconds = service.warm_up()
    except ModelUnavailable as exc:
        with _tracker.lock:
            _tracker.phase, _tracker.error = "failed", exc.message
        raise
    runtime = service.runtime.describe() if service.runtime else "runtime unknown"
    with _tracker.lock:
        already_ready = _tracker.phase == "ready"
        _tracker.phase, _tracker.error = "ready", None
        if not already_ready or _tracker.seconds is None:
            _tracker.seconds = round(seconds, 3)
    if seconds > 0:
        say(f"Model ready in {seconds:.2f} s ({runtime}).")
    return seconds


def warm_up_serving_process() -> threading.Thread | None:
    """Called by wsgi.py/asgi.py: with ``HF_WARMUP=1`` start loading the model in a background thread.

    The device and precision are resolved first, synchronously, so a missing GPU stops the worker with a
    clear ``ImproperlyConfigured`` instead of a half-started server. Returns the thread (tests join it).
    """
    if not warmup_enabled(serve_command=False):
        return None

    describe_runtime()  # raises RuntimeUnavailable (an ImproperlyConfigured) naming HF_DEVICE / HF_DTYPE
    _register_fork_hook()
    return _start_thread()


def _start_thread() -> threading.Thread | None:
    with _tracker.lock:
        if _tracker.thread is not None and _tracker.thread.is_alive():
            return _tracker.thread
        if _tracker.phase == "ready":
            return None
        _tracker.enabled, _tracker.phase = True, "loading"
        thread = threading.Thread(target=_warm_up_in_background, name=THREAD_NAME, daemon=True)
        _tracker.thread = thread
    thread.start()
    return thread


def _warm_up_in_background() -> None:
    started = time.perf_counter()
    try:
        warm_up()
    except ModelUnavailable as exc:
        logger.error("Model warm-up failed after %.2f s: %s", time.perf_counter() - started, exc.message)
    except Exception:
        with _tracker.lock:
            _tracker.phase, _tracker.error = "failed", "unexpected error during warm-up (see the log)"
        logger.exception("Model warm-up crashed")


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if _fork_hook_registered or not hasattr(os, "register_at_fork"):  # Windows has no fork
        return
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _fork_hook_registered = True


def _after_fork_in_child() -> None:
    """Locks and threads do not survive fork: start over with a fresh registry in the child."""
    global _tracker

    _tracker = _Tracker()
    nlp_service.reset_services()  # the parent's half-loaded service and its locks stay behind
    logger.warning(PRELOAD_WARNING)
    _start_thread()


def reset_warmup() -> None:
    """Forget the warm-up state (tests only)."""
    global _tracker
    _tracker = _Tracker()
