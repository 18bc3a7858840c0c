"""The generations running in this process, checkpointed into their records while they run.

Every ``GENERATION_CHECKPOINT_SECONDS`` (0.5 s) each live generation gets one round trip. When its
engine has streamed new text (collected on the worker's event path, ``InferenceRequest.partial_text``)
it is a ``find_one_and_update``: the text so far, ``heartbeat_at``, ``checkpoint`` +1, reading back
``stop_requested_at``. When nothing new arrived (queued, a long prefill) it only reads the Stop marker,
and writes the heartbeat alone every ``HEARTBEAT_SECONDS``: a slow model never writes more than once
per token. Either way a Stop written by any process cancels the request here within one interval.
The writes run on one daemon thread per process (started with the first generation), never on the
inference thread: a slow or unreachable store does not slow the model down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from app.domain.ids import utc_now
from app.domain.interaction import STATUS_PENDING, Interaction, Scope
from app.errors import StoreUnavailable
from app.services.engines.worker import InferenceRequest
from app.services.mongo_generation import checkpoint, find_record, request_stop, stop_marker
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)

REMOTE_STOP_POLL_SECONDS = 0.1  # how often a Stop sent here looks whether the generating process ended it
STORE_DOWN_BACKOFF_SECONDS = 2.0  # while the store fails, try a stream's checkpoint this often at most
HEARTBEAT_SECONDS = 2.0  # with no new text, the heartbeat alone is written this often (stale after 10 s)


def worker_name() -> str:
    """This process, as the record's ``worker`` field says it: ``"<hostname>:<pid>"``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_seconds() -> float:
    return float(getattr(settings, "GENERATION_CHECKPOINT_SECONDS", 0.5))


@dataclass
class LiveGeneration:
    """One generation of this process: its record's id, its engine request, when it was last written."""

    id: str
    request: InferenceRequest
    shape: Callable[[str], str]  # what of the streamed text the record keeps (stop strings cut it)
    next_write: float = field(default_factory=time.monotonic)
    last_write: float = field(default_factory=time.monotonic)  # the write-ahead counts as the first heartbeat
    written_tokens: int = 0
    writes: int = 0


class Checkpointer:
    """The live generations of this process and the thread that writes their checkpoints."""

    def __init__(self) -> None:
        self._live: dict[str, LiveGeneration] = {}
        self._starting: set[str] = set()  # written ahead, not submitted yet: never reaped meanwhile
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.writes = 0  # checkpoint writes made, and seconds spent in round trips (the benchmark reads them)
        self.busy_seconds = 0.0

    def reserve(self, interaction_id: str) -> None:
        """Claim a generation about to be written ahead and submitted (the reaper leaves it alone)."""
        with self._condition:
            self._starting.add(interaction_id)

    def track(self, interaction_id: str, request: InferenceRequest, shape: Callable[[str], str] = str) -> None:
        """Checkpoint ``request`` into record ``interaction_id`` until it finishes (first write in one interval)."""
        generation = LiveGeneration(
            id=interaction_id, request=request, shape=shape, next_write=time.monotonic() + checkpoint_seconds()
        )
        with self._condition:
            self._starting.discard(interaction_id)
            self._live[interaction_id] = generation
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="generation-checkpoints", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def forget(self, interaction_id: str) -> int:
        """Stop checkpointing it; returns how many checkpoints it had written."""
        with self._condition:
            self._starting.discard(interaction_id)
            live = self._live.pop(interaction_id, None)
        return live.writes if live is not None else 0

    def is_live(self, interaction_id: str) -> bool:
        with self._condition:
            return interaction_id in self._live

    def live_ids(self) -> list[str]:
        with self._condition:
            return [*self._live, *self._starting]

    def clear(self) -> None:
        with self._condition:
            self._live.clear()
            self._starting.clear()

    def _run(self) -> None:
        while True:
            due = self._wait_for_due()
            for generation in due:
                self._write(generation)

    def _wait_for_due(self) -> list[LiveGeneration]:
        with self._condition:
            while True:
                now = time.monotonic()
                for key in [key for key, live in self._live.items() if live.request.finished]:
                    del self._live[key]
                due = [live for live in self._live.values() if live.next_write <= now]
                if due:
                    return due
                soonest = min((live.next_write for live in self._live.values()), default=None)
                self._condition.wait(None if soonest is None else soonest - now)

    def _write(self, generation: LiveGeneration) -> None:
        request = generation.request
        started = time.monotonic()
        generation.next_write = started + checkpoint_seconds()
        tokens = request.streamed_tokens
        write = tokens != generation.written_tokens or started - generation.last_write >= HEARTBEAT_SECONDS
        try:
            if write:
                text = generation.shape(request.partial_text())
                answer = checkpoint(get_repository(), generation.id, output=text, output_tokens=tokens, now=utc_now())
            else:
                answer = stop_marker(get_repository(), generation.id)
        except StoreUnavailable:
            generation.next_write = started + max(checkpoint_seconds(), STORE_DOWN_BACKOFF_SECONDS)
            return
        except Exception:
            logger.exception("Checkpoint of generation %s failed", generation.id)
            return
        self.busy_seconds += time.monotonic() - started
        if write:
            generation.writes += 1
            generation.written_tokens, generation.last_write = tokens, started
            self.writes += 1
        if answer.stop_requested and not request.cancelled:
            logger.info("Generation %s: Stop requested through the store; cancelling", generation.id)
            request.cancel()


_checkpointer = Checkpointer()


def get_checkpointer() -> Checkpointer:
    """The process-wide checkpointer (its thread starts with the first tracked generation)."""
    return _checkpointer


def request_stop_quietly(interaction_id: str, *, scope: Scope) -> None:
    """Write the Stop marker (best effort: the local request is cancelled anyway)."""
    try:
        request_stop(get_repository(), interaction_id, scope=scope, now=utc_now())
    except StoreUnavailable:
        logger.warning("Stop of generation %s not written to the store (cancelled here anyway)", interaction_id)


def await_record_end(interaction_id: str, *, scope: Scope, wait_seconds: float) -> Interaction | None:
    """The visitor's record once it is no longer pending, or as it is after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    record = find_record(get_repository(), interaction_id, scope=scope)
    while record is not None and record.status == STATUS_PENDING and time.monotonic() < deadline:
        time.sleep(REMOTE_STOP_POLL_SECONDS)
        record = find_record(get_repository(), interaction_id, scope=scope)
    return record
