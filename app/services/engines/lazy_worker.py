"""The one ``ModelWorker`` of a service, created on first use, with the queue and batching limits from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings

from app.services.engines.worker import (
    DEFAULT_BATCH_WINDOW_SECONDS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    BatchBackend,
    ModelWorker,
)


class LazyWorker:
    """The one ``ModelWorker`` of a service, created on first use (lock + double check).

    ``unbatched``: the backend admits requests as they come (a server batches them, or the continuous
    loop lets them join at the next decode step), so there is no batch window: waiting for companions
    would only delay the first token.
    """

    def __init__(self, make_backend: Callable[[], BatchBackend], *, unbatched: bool = False) -> None:
        self._make_backend = make_backend
        self._unbatched = unbatched
        self._worker: ModelWorker | None = None
        self._lock = threading.Lock()

    def get(self) -> ModelWorker:
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    limits = {**worker_settings(), **({"batch_window_seconds": 0.0} if self._unbatched else {})}
                    self._worker = ModelWorker(self._make_backend(), **limits)  # type: ignore[arg-type]
        return self._worker

    @property
    def unbatched(self) -> bool:
        return self._unbatched

    @property
    def queue_length(self) -> int:
        worker = self._worker
        return 0 if worker is None else worker.queue_length

    def stop(self) -> None:
        """Stop and forget the worker (if any); the next ``get()`` starts a fresh one."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()


def worker_settings() -> dict[str, float | int]:
    """Queue and batching limits from Django settings (defaults outside Django)."""
    try:
        return {
            "max_queue": int(getattr(settings, "HF_QUEUE_MAX", DEFAULT_MAX_QUEUE)),
            "max_batch": int(getattr(settings, "HF_MAX_BATCH", DEFAULT_MAX_BATCH)),
            "batch_window_seconds": float(getattr(settings, "HF_BATCH_WINDOW_MS", 8)) / 1000,
        }
    except Exception:  # settings not configured (scripts)
        return {
            "max_queue": DEFAULT_MAX_QUEUE,
            "max_batch": DEFAULT_MAX_BATCH,
            "batch_window_seconds": DEFAULT_BATCH_WINDOW_SECONDS,
        }


class OnItsWorker:
    """For a service whose requests all go through one ``LazyWorker`` (held as ``self._worker``)."""

    _worker: LazyWorker

    def worker(self) -> ModelWorker:
        return self._worker.get()

    @property
    def queue_length(self) -> int:
        return self._worker.queue_length
