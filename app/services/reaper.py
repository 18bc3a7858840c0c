"""The reaper: a ``pending`` record whose generating process died becomes ``interrupted``.

Every serving process runs one daemon thread (``start_reaper``, from ``start_serving_process``): a
pass at start, then one every ``GENERATION_REAP_SECONDS``. A pending record is reaped, keeping the
partial text of its last checkpoint, when its heartbeat is older than ``GENERATION_STALE_SECONDS``
(10 s), or sooner — after two missed checkpoints — when its ``worker`` is a process of this machine
that no longer exists (a restart after a kill reaps at once), or names this very process but is not
one of its live generations (an earlier process with the same pid). Live generations of this process
are never reaped; one that ended but whose final write is still in the outbox may be marked, and the
replayed final record then replaces the mark. Many processes reaping at once is harmless: each
update is conditional on the record still being pending at the checkpoint it was read at.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings

from app.domain.ids import utc_now
from app.domain.interaction import Interaction
from app.errors import StoreUnavailable
from app.services.live_generations import checkpoint_seconds, get_checkpointer
from app.services.mongo_generation import mark_interrupted, stale_pending
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)


def stale_seconds() -> float:
    return float(getattr(settings, "GENERATION_STALE_SECONDS", 10.0))


def reap_seconds() -> float:
    return float(getattr(settings, "GENERATION_REAP_SECONDS", 3.0))


def reap_stale(*, now: datetime | None = None) -> int:
    """One pass: mark dead generations ``interrupted``; returns how many. Raises ``StoreUnavailable``."""
    now = now or utc_now()
    repository = get_repository()
    stale_cutoff = now - timedelta(seconds=stale_seconds())
    quiet_cutoff = now - timedelta(seconds=2 * checkpoint_seconds() + 0.5)
    live = set(get_checkpointer().live_ids())
    reaped = 0
    for record in stale_pending(repository, cutoff=quiet_cutoff):
        if record.id in live:
            continue
        if not (_last_sign_of_life(record) < stale_cutoff or _worker_is_dead_here(record.worker)):
            continue
        if mark_interrupted(repository, record):
            reaped += 1
            logger.warning(
                "Generation %s (worker %s) was interrupted; kept its partial answer", record.id, record.worker
            )
    return reaped


def _last_sign_of_life(record: Interaction) -> datetime:
    return record.heartbeat_at or record.created_at


def _worker_is_dead_here(worker: str | None) -> bool:
    """Whether ``worker`` ("host:pid") names a process of this machine that no longer generates it."""
    host, _, pid_text = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # "ours" but not live here: an earlier process with this pid (a container's pid 1…)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, another user's
    return False


class Reaper:
    """The daemon thread of one process; ``start`` is idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()

    def start(self) -> threading.Thread:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._stop = threading.Event()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, args=(self._stop,), name="reaper", daemon=True)
                self._thread.start()
            return self._thread

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                reap_stale()
            except StoreUnavailable:
                pass  # logged by the repository; the next pass tries again
            except Exception:
                logger.exception("Reaper pass failed")
            stop.wait(reap_seconds())


_reaper = Reaper()


def start_reaper() -> threading.Thread:
    """Start this process's reaper (a pass now, then periodically)."""
    return _reaper.start()


def stop_reaper() -> None:
    """Stop this process's reaper (tests)."""
    _reaper.stop()
