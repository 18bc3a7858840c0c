"""Local vector search: one in-memory float32 matrix per owner, read from MongoDB, never the source of truth.

An owner's index is built on first use from the ``embedding`` field of their interactions and
refreshed before every search with what was embedded since (``embedded_at > last seen``, index
``owner_embedded_at``), so it costs one empty indexed query when nothing changed. A search is one
matrix-vector product (100k × 384 floats ≈ 150 MB, ≈ 10 ms on two cores). Hits are ids only: the
caller re-reads them from MongoDB *with the visitor's scope*, so a stale entry (deleted, moved to
another owner) is simply not found.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from bson import ObjectId
from bson.binary import Binary, BinaryVectorDtype
from pymongo.collection import Collection

from app.services.search.semantic import DIMS

logger = logging.getLogger(__name__)

EMBEDDING_FIELD = "embedding"
EMBEDDING_MODEL_FIELD = "embedding_model"
EMBEDDED_AT_FIELD = "embedded_at"
MAX_OWNERS_CACHED = 8
READ_BATCH = 5000
FIRST_BUILD_WINDOW = timedelta(days=1)
# About this many vectors per first-build query (~3 MB from the store).
BUILD_WINDOW_DOCS = 2000
REFRESH_LAG = timedelta(seconds=2)


def encode_vector(vector: np.ndarray) -> Binary:
    """A BSON binary vector (subtype 9, float32): compact, and what Atlas ``$vectorSearch`` indexes."""
    return Binary.from_vector(np.asarray(vector, dtype=np.float32).tolist(), BinaryVectorDtype.FLOAT32)


def decode_vector(value: Any) -> np.ndarray | None:
    if isinstance(value, Binary) and value.subtype == 9 and len(value) == 2 + DIMS * 4:
        return np.frombuffer(bytes(value)[2:], dtype="<f4")
    if isinstance(value, list) and len(value) == DIMS:
        return np.asarray(value, dtype=np.float32)
    return None


@dataclass(frozen=True)
class VectorHit:
    id: str
    score: float
    model: str = ""
    status: str = ""
    created_ms: int = 0


@dataclass(frozen=True)
class VectorFilter:
    """Conditions applied to the index's own columns before the top hits are taken."""

    model: str = ""
    task: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None


class _Codes:
    """Strings (models, statuses) as small integers, so a filter is one numpy comparison."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        if value not in self._codes:
            self._codes[value] = len(self.values)
            self.values.append(value)
        return self._codes[value]

    def find(self, value: str) -> int:
        return self._codes.get(value, -1)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class OwnerIndex:
    """Vectors of one owner (or of everyone, for a shared history), appended as they are embedded.

    Beside each vector it keeps the record's model, task, status and time, so filters narrow the
    candidates before the top hits are taken (no per-hit round trip to MongoDB).
    """

    def __init__(self, *, owner_query: dict[str, Any], model_name: str) -> None:
        self._owner_query = owner_query
        self._model_name = model_name
        self._ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._matrix = np.zeros((0, DIMS), dtype=np.float32)
        self._columns = {name: np.zeros(0, dtype=np.int64) for name in ("model", "task", "status", "created")}
        self._codes = {name: _Codes() for name in ("model", "task", "status")}
        self._last_seen: datetime | None = None
        self._built = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def built(self) -> bool:
        return self._built

    def _row(self, doc: dict[str, Any]) -> dict[str, int]:
        created = doc.get("created_at")
        return {
            "model": self._codes["model"].code(str(doc.get("model") or "")),
            "task": self._codes["task"].code(str(doc.get("task") or "")),
            "status": self._codes["status"].code(str(doc.get("status") or "ok")),
            "created": _millis(created) if isinstance(created, datetime) else 0,
        }

    def _take(
        self,
        doc: dict[str, Any],
        rows: list[np.ndarray],
        new_ids: list[str],
        metas: list[dict[str, int]],
        replaced: dict[int, tuple[np.ndarray, dict[str, int]]],
    ) -> None:
        if doc.get(EMBEDDING_MODEL_FIELD) != self._model_name:
            return
        vector = decode_vector(doc.get(EMBEDDING_FIELD))
        if vector is None:
            return
        key = str(doc["_id"])
        position = self._positions.get(key)
        if position is not None:
            replaced[position] = (vector, self._row(doc))
            return
        self._positions[key] = len(self._ids) + len(rows)
        new_ids.append(key)
        rows.append(vector)
        metas.append(self._row(doc))

    def _queries(self, oldest: datetime | None) -> Iterator[tuple[dict[str, Any], Callable[[int], None]]]:
        """What to read: since the last refresh by ``embedded_at``; the first time, the whole history in
        ``created_at`` windows of about ``BUILD_WINDOW_DOCS`` records (SecantusDB materialises a query's matches
        before the first batch, so one query for 100k vectors would outlast the socket timeout)."""
        if self._built or oldest is None:
            since = {"$gt": self._last_seen} if self._last_seen else {"$exists": True}
            yield {**self._owner_query, EMBEDDED_AT_FIELD: since}, lambda count: None
            return
        upper = datetime.now(UTC) + timedelta(days=1)
        sized = {"window": FIRST_BUILD_WINDOW}

        def resize(count: int) -> None:
            growth = 2.0 if count == 0 else min(max(BUILD_WINDOW_DOCS / count, 0.25), 4.0)
            sized["window"] = sized["window"] * growth

        while upper > oldest:
            lower = max(upper - sized["window"], oldest)
            # "$gt" a millisecond earlier: SecantusDB 0.7 drops the inclusive end of a descending-index range.
            bounds = {"$gt": lower - timedelta(milliseconds=1), "$lt": upper}
            yield {**self._owner_query, "created_at": bounds}, resize
            upper = lower

    def refresh(self, collection: Collection[dict[str, Any]], *, oldest: datetime | None = None) -> int:
        """Read what was embedded since the last refresh; returns how many vectors were added or replaced.

        ``oldest`` (the owner's first interaction time) lets the first build read in windows."""
        with self._lock:
            started = time.perf_counter()
            projection = {
                EMBEDDING_FIELD: 1,
                EMBEDDED_AT_FIELD: 1,
                EMBEDDING_MODEL_FIELD: 1,
                "model": 1,
                "task": 1,
                "status": 1,
                "created_at": 1,
            }
            rows: list[np.ndarray] = []
            new_ids: list[str] = []
            metas: list[dict[str, int]] = []
            replaced: dict[int, tuple[np.ndarray, dict[str, int]]] = {}
            newest = self._last_seen
            for query, resize in self._queries(oldest):
                docs = list(collection.find(query, projection).batch_size(READ_BATCH))
                resize(len(docs))
                for doc in docs:
                    self._take(doc, rows, new_ids, metas, replaced)
                    moment = doc.get(EMBEDDED_AT_FIELD)
                    if isinstance(moment, datetime) and (newest is None or moment > newest):
                        newest = moment
            if rows:
                self._ids.extend(new_ids)
                self._matrix = np.vstack([self._matrix, np.stack(rows)])
                for name in self._columns:
                    added = np.array([meta[name] for meta in metas], dtype=np.int64)
                    self._columns[name] = np.concatenate([self._columns[name], added])
            for position, (vector, meta) in replaced.items():
                self._matrix[position] = vector
                for name in self._columns:
                    self._columns[name][position] = meta[name]
            # A batch of vectors shares one embedded_at; until it is LAG old, read from a little before it
            # again next time (a bulk write still in flight may add more with the same time).
            if newest is not None and datetime.now(UTC) - newest < REFRESH_LAG:
                newest = newest - REFRESH_LAG
            self._last_seen = newest
            self._built = True
            changed = len(rows) + len(replaced)
            if changed > 100:
                logger.info("Vector index: %s vectors read in %.2f s", changed, time.perf_counter() - started)
            return changed

    def _mask(self, where: VectorFilter) -> np.ndarray | None:
        mask: np.ndarray | None = None

        def narrow(condition: np.ndarray) -> None:
            nonlocal mask
            mask = condition if mask is None else mask & condition

        for name, value in (("model", where.model), ("task", where.task), ("status", where.status)):
            if value:
                narrow(self._columns[name] == self._codes[name].find(value))
        if where.since is not None:
            narrow(self._columns["created"] >= _millis(where.since))
        if where.until is not None:
            narrow(self._columns["created"] < _millis(where.until))
        return mask

    def search(
        self, vector: np.ndarray, *, limit: int, threshold: float, where: VectorFilter | None = None
    ) -> list[VectorHit]:
        with self._lock:
            if not self._ids:
                return []
            scores = self._matrix @ np.asarray(vector, dtype=np.float32)
            mask = self._mask(where) if where is not None else None
            ids = self._ids
            models, statuses, created = self._columns["model"], self._columns["status"], self._columns["created"]
            model_names, status_names = list(self._codes["model"].values), list(self._codes["status"].values)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        count = min(limit, len(ids))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            VectorHit(
                id=ids[i],
                score=float(scores[i]),
                model=model_names[models[i]],
                status=status_names[statuses[i]],
                created_ms=int(created[i]),
            )
            for i in top
            if scores[i] >= threshold
        ]


class VectorIndexes:
    """The owner indexes of this process (the most recently used few)."""

    def __init__(self, *, max_owners: int = MAX_OWNERS_CACHED) -> None:
        self._max_owners = max_owners
        self._indexes: OrderedDict[tuple[str, str, str], OwnerIndex] = OrderedDict()
        self._lock = threading.Lock()

    def for_owner(
        self,
        collection: Collection[dict[str, Any]],
        *,
        owner_query: dict[str, Any],
        model_name: str,
        oldest: Callable[[], datetime | None] | None = None,
    ) -> OwnerIndex:
        key = (collection.full_name, repr(sorted(owner_query.items())), model_name)
        with self._lock:
            index = self._indexes.get(key)
            if index is None:
                index = OwnerIndex(owner_query=owner_query, model_name=model_name)
                self._indexes[key] = index
            self._indexes.move_to_end(key)
            while len(self._indexes) > self._max_owners:
                self._indexes.popitem(last=False)
        index.refresh(collection, oldest=oldest() if oldest is not None and not index.built else None)
        return index

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


_indexes = VectorIndexes()


def get_vector_indexes() -> VectorIndexes:
    return _indexes


def object_ids(ids: list[str]) -> list[ObjectId]:
    return [ObjectId(value) for value in ids if ObjectId.is_valid(value)]
