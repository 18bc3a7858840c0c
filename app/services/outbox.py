"""A durable local outbox for interactions: nothing a visitor submitted is lost when MongoDB is down.

Every interaction is first committed to a small SQLite table in ``DATA_DIR`` (``PRAGMA
synchronous=FULL``: the commit is fsync'd before the answer is returned), then written to MongoDB.
When MongoDB cannot be reached the row stays pending and is replayed later, oldest first, by a
background thread of the serving process (started lazily, never at import time) or by
``python manage.py replay_outbox``. Replays are idempotent: MongoDB keys the record by the
app-generated id; a ``pending`` record is inserted once (a duplicate is ignored) and a final one
replaces the stored record with its id (``mongo_generation.write_record``). A final record added
while its ``pending`` one still waits takes its place in the queue (same position, new document).

SQLite works the same on Linux, macOS and Windows and is safe for several worker processes
sharing one ``DATA_DIR`` (each process opens its own connection).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bson import json_util
from django.conf import settings

from app.domain.interaction import Interaction
from app.errors import StoreUnavailable
from app.services.mongo_documents import from_document, to_document
from app.services.mongo_generation import write_record
from app.services.mongo_repo import InteractionRepository, get_repository

logger = logging.getLogger(__name__)

STATE_PENDING = "pending"
STATE_FAILED = "failed"  # could not be decoded or was refused by MongoDB for good: kept, never retried

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    queued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_state_seq ON outbox (state, seq);
"""


class OutboxError(Exception):
    """The local outbox file cannot be written (disk full, read-only folder…)."""


@dataclass(frozen=True)
class PendingItem:
    seq: int
    interaction_id: str
    document: str


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    failed: int
    remaining: int
    store_error: str | None = None


def encode_interaction(interaction: Interaction) -> str:
    """The interaction's MongoDB document as Extended JSON (keeps ObjectId and dates exact)."""
    return json_util.dumps(to_document(interaction), json_options=json_util.CANONICAL_JSON_OPTIONS)


def decode_interaction(document: str) -> Interaction:
    doc = json_util.loads(document, json_options=json_util.JSONOptions(tz_aware=True))
    return from_document(doc)


class Outbox:
    """Pending interactions in one SQLite file; safe to share between threads and processes."""

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid: int | None = None
        self._replay_lock = threading.Lock()

    # --- storage --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # fsync every commit: durable before we answer
        connection.executescript(_SCHEMA)
        logger.info("Outbox opened at %s", self.path)
        return connection

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._connection is not None and self._connection_pid != os.getpid():
                    self._connection = None  # inherited through fork: never share a SQLite handle
                if self._connection is None:
                    self._connection = self._connect()
                    self._connection_pid = os.getpid()
                yield self._connection
            except (sqlite3.Error, OSError) as exc:
                logger.error("Outbox %s failed: %s", self.path, exc)
                raise OutboxError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # --- queue operations -----------------------------------------------------------------------
    def add(self, interaction: Interaction) -> int:
        """Commit ``interaction`` to disk (fsync'd) and return its sequence number.

        The same id again (a final record after its pending one) replaces the document in place.
        """
        document = encode_interaction(interaction)
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO outbox (interaction_id, document, queued_at) VALUES (?, ?, ?) "
                "ON CONFLICT(interaction_id) DO UPDATE SET state = 'pending', document = excluded.document "
                "RETURNING seq",
                (interaction.id, document, time.time()),
            )
            row = cursor.fetchone()
        return int(row[0])

    def remove(self, interaction_id: str, *, document: str | None = None) -> None:
        """Forget an item; with ``document``, only if it was not replaced meanwhile (a newer version waits)."""
        with self._db() as db:
            if document is None:
                db.execute("DELETE FROM outbox WHERE interaction_id = ?", (interaction_id,))
            else:
                db.execute("DELETE FROM outbox WHERE interaction_id = ? AND document = ?", (interaction_id, document))

    def has_pending_before(self, seq: int) -> bool:
        """True when an older interaction is still waiting (so a new one must queue behind it)."""
        with self._db() as db:
            row = db.execute(
                "SELECT 1 FROM outbox WHERE state = ? AND seq < ? LIMIT 1", (STATE_PENDING, seq)
            ).fetchone()
        return row is not None

    def depth(self) -> int:
        """How many interactions wait to be written to MongoDB (cheap: no MongoDB round trip)."""
        if not self.path.exists():
            return 0
        with self._db() as db:
            row = db.execute("SELECT COUNT(*) FROM outbox WHERE state = ?", (STATE_PENDING,)).fetchone()
        return int(row[0])

    def failed_count(self) -> int:
        if not self.path.exists():
            return 0
        with self._db() as db:
            row = db.execute("SELECT COUNT(*) FROM outbox WHERE state = ?", (STATE_FAILED,)).fetchone()
        return int(row[0])

    def find(self, interaction_id: str) -> Interaction | None:
        """A queued interaction by id (callers check the visitor's scope)."""
        if not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT document FROM outbox WHERE interaction_id = ?", (interaction_id,)).fetchone()
        if row is None:
            return None
        try:
            return decode_interaction(str(row[0]))
        except Exception:
            logger.exception("Outbox item %s cannot be decoded", interaction_id)
            return None

    def pending(self, *, limit: int = 100) -> list[PendingItem]:
        with self._db() as db:
            rows = db.execute(
                "SELECT seq, interaction_id, document FROM outbox WHERE state = ? ORDER BY seq LIMIT ?",
                (STATE_PENDING, limit),
            ).fetchall()
        return [PendingItem(seq=int(seq), interaction_id=str(iid), document=str(doc)) for seq, iid, doc in rows]

    def _note_attempt(self, item: PendingItem, error: str, *, state: str = STATE_PENDING) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, state = ? WHERE seq = ?",
                (error[:500], state, item.seq),
            )

    # --- replay ---------------------------------------------------------------------------------
    def replay(self, *, repository: InteractionRepository | None = None, batch: int = 100) -> ReplayResult:
        """Write pending interactions to MongoDB oldest first; stop at the first store failure.

        Only one replay runs at a time in a process; concurrent replays in other processes are
        harmless (the writes are idempotent).
        """
        with self._replay_lock:
            repo = repository or get_repository()
            replayed = failed = 0
            while True:
                items = self.pending(limit=batch)
                if not items:
                    return ReplayResult(replayed=replayed, failed=failed, remaining=0)
                for item in items:
                    try:
                        interaction = decode_interaction(item.document)
                        write_record(repo, interaction)
                    except StoreUnavailable as exc:
                        self._note_attempt(item, exc.message)
                        return ReplayResult(
                            replayed=replayed, failed=failed, remaining=self.depth(), store_error=exc.message
                        )
                    except Exception as exc:  # a record MongoDB refuses for good must not block the queue
                        logger.exception("Outbox item %s cannot be stored; kept as failed", item.interaction_id)
                        self._note_attempt(item, f"{exc.__class__.__name__}: {exc}", state=STATE_FAILED)
                        failed += 1
                        continue
                    self.remove(item.interaction_id, document=item.document)
                    replayed += 1
                if replayed:
                    logger.info("Outbox: %s interaction(s) replayed to MongoDB", replayed)


class ReplayWorker:
    """A daemon thread that replays the outbox with back-off until it is empty, then ends.

    ``wake()`` starts it when needed; it is only ever started from code that runs in the serving
    process (a request), never at import time or in ``AppConfig.ready()``.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        replay: Callable[[], ReplayResult] | None = None,
    ) -> None:
        self._outbox = outbox
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._replay = replay or outbox.replay
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._event = threading.Event()
        self._stopping = False
        self._last_attempt = 0.0
        self._busy = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._thread is None:
                self._last_attempt = time.monotonic()
                self._thread = threading.Thread(target=self._run, name="outbox-replay", daemon=True)
                self._thread.start()
            elif not self._busy and time.monotonic() - self._last_attempt >= self._first_delay:
                # Retry early (new work, maybe the store is back), but never more often than
                # ``first_delay`` however many requests call wake() while the store is down.
                self._event.set()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._event.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        delay = self._first_delay
        logger.info("Outbox replay worker started (%s)", self._outbox.path)
        while True:
            self._busy = True
            try:
                result = self._replay()
                remaining = result.remaining
            except Exception:
                logger.exception("Outbox replay failed")
                remaining = -1
            finally:
                self._busy = False
                self._last_attempt = time.monotonic()  # spacing counts from the end of an attempt
            with self._lock:
                if self._stopping or remaining == 0:
                    self._thread = None
                    logger.info("Outbox replay worker finished (queue empty or stopping)")
                    return
            self._event.wait(delay)
            self._event.clear()
            delay = min(delay * 2, self._max_delay)
            with self._lock:
                if self._stopping:
                    self._thread = None
                    return


# --- process-wide outbox ----------------------------------------------------------------------------

_outbox: Outbox | None = None
_worker: ReplayWorker | None = None
_outbox_lock = threading.Lock()


def _configured_path() -> Path:
    return Path(settings.OUTBOX_PATH)


def get_outbox() -> Outbox:
    """The process-wide outbox at ``settings.OUTBOX_PATH`` (reopened if the setting changes)."""
    global _outbox, _worker
    path = _configured_path()
    current = _outbox
    if current is not None and current.path == path:
        return current
    with _outbox_lock:
        if _outbox is None or _outbox.path != path:
            _shutdown_locked()
            _outbox = Outbox(path=path)
        return _outbox


def get_worker() -> ReplayWorker:
    global _worker
    outbox = get_outbox()
    with _outbox_lock:
        if _worker is None:
            _worker = ReplayWorker(
                outbox=outbox,
                first_delay=settings.OUTBOX_RETRY_SECONDS,
                max_delay=settings.OUTBOX_MAX_RETRY_SECONDS,
            )
        return _worker


def _shutdown_locked() -> None:
    global _outbox, _worker
    if _worker is not None:
        _worker.stop()
        _worker = None
    if _outbox is not None:
        _outbox.close()
        _outbox = None


def reset_outbox() -> None:
    """Stop the worker and forget the process-wide outbox (tests, settings changes)."""
    with _outbox_lock:
        _shutdown_locked()


def outbox_depth() -> int:
    """Pending interactions; 0 when the outbox cannot be read (logged)."""
    try:
        return get_outbox().depth()
    except OutboxError:
        return 0
