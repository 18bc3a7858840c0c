"""Embeddings are computed off the request path: a queue and one daemon thread per process.

The repository announces every stored interaction (``hooks.stored``); this module, once imported,
queues the ids and a thread embeds them in batches and writes ``embedding`` (a BSON float32 vector),
``embedding_model`` and ``embedded_at`` on the record. Anything the queue missed (another process,
a full queue, a restart, records older than search) is found by ``embed_missing`` — run by the
``backfill_embeddings`` command, with progress.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import UpdateOne

from app.domain.ids import utc_now
from app.services.mongo_repo import InteractionRepository, get_repository, store_errors
from app.services.search import hooks
from app.services.search.semantic import Embedder, EmbedderUnavailable, document_text, get_embedder
from app.services.search.vectors import (
    EMBEDDED_AT_FIELD,
    EMBEDDING_FIELD,
    EMBEDDING_MODEL_FIELD,
    encode_vector,
    object_ids,
)

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
BATCH = 32
BACKFILL_BATCH = 256


def embed_ids(repository: InteractionRepository, embedder: Embedder, ids: Sequence[str]) -> int:
    """Embed these interactions (those not yet embedded by ``embedder``); returns how many were written."""
    wanted = object_ids(list(ids))
    if not wanted:
        return 0
    with store_errors("embed"):
        docs = list(
            repository.collection.find(
                {"_id": {"$in": wanted}, EMBEDDING_MODEL_FIELD: {"$ne": embedder.name}}, {"prompt": 1, "output": 1}
            )
        )
    return _write(repository, embedder, docs)


def _write(repository: InteractionRepository, embedder: Embedder, docs: list[dict[str, Any]]) -> int:
    if not docs:
        return 0
    vectors = embedder.embed([document_text(doc.get("prompt") or "", doc.get("output") or "") for doc in docs])
    now = utc_now()
    updates = [
        UpdateOne(
            {"_id": doc["_id"]},
            {
                "$set": {
                    EMBEDDING_FIELD: encode_vector(vector),
                    EMBEDDING_MODEL_FIELD: embedder.name,
                    EMBEDDED_AT_FIELD: now,
                }
            },
        )
        for doc, vector in zip(docs, vectors, strict=True)
    ]
    with store_errors("embed"):
        repository.collection.bulk_write(updates, ordered=False)
    return len(updates)


def count_missing(repository: InteractionRepository, embedder: Embedder) -> int:
    with store_errors("embed"):
        return repository.collection.count_documents({EMBEDDING_MODEL_FIELD: {"$ne": embedder.name}})


def embed_missing(
    repository: InteractionRepository,
    embedder: Embedder,
    *,
    batch: int = BACKFILL_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed every interaction that has no vector from ``embedder`` yet (all owners); returns how many."""
    done = 0
    missing = {EMBEDDING_MODEL_FIELD: {"$ne": embedder.name}}
    while True:
        with store_errors("embed"):
            docs = list(repository.collection.find(missing, {"prompt": 1, "output": 1}).limit(batch))
        if not docs:
            return done
        done += _write(repository, embedder, docs)
        if progress is not None:
            progress(done)


class EmbeddingWorker:
    """One daemon thread per process that embeds queued ids; started on the first id."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str] = queue.Queue(maxsize=QUEUE_SIZE)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def enqueue(self, ids: Sequence[str]) -> None:
        if get_embedder() is None:
            return
        self._idle.clear()
        for value in ids:
            try:
                self._queue.put_nowait(value)
            except queue.Full:
                logger.warning("Embedding queue full: %s left for `manage.py backfill_embeddings`", value)
                break
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="search-embeddings", daemon=True)
                self._thread.start()

    def _take(self) -> list[str]:
        first = self._queue.get()
        ids = [first]
        while len(ids) < BATCH:
            try:
                ids.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return ids

    def _run(self) -> None:
        while True:
            ids = self._take()
            try:
                embedder = get_embedder()
                if embedder is not None:
                    written = embed_ids(get_repository(), embedder, ids)
                    logger.debug("Embedded %s of %s queued interactions", written, len(ids))
            except EmbedderUnavailable as exc:
                logger.error("Embeddings off for now: %s", exc)
            except Exception:  # the worker must outlive one bad batch; backfill catches up later
                logger.exception("Embedding %s interactions failed", len(ids))
            finally:
                for _ in ids:
                    self._queue.task_done()
                if self._queue.unfinished_tasks == 0:
                    self._idle.set()

    def pending(self) -> int:
        """Ids queued or being embedded in this process."""
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything queued so far is processed (tests, benchmarks)."""
        return self._idle.wait(timeout)


_worker = EmbeddingWorker()


def get_worker() -> EmbeddingWorker:
    return _worker


hooks.add_listener(_worker.enqueue)
