"""MongoDB repository for interactions (PyMongo only).

One ``MongoClient`` per process, created lazily in the process that uses it (PyMongo is not
fork-safe, so a changed pid means a new client). Every PyMongo failure becomes
``StoreUnavailable``. Only features that both MongoDB/Atlas and SecantusDB support are used:
no ``$text``, no ``$where``, no compiled regular expressions.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from app.errors import INTERACTION_NOT_FOUND, STORE_UNAVAILABLE, InteractionNotFound, InvalidCursor, StoreUnavailable
from app.services.metrics import count_store_error
from app.services.search import (
    MODEL_KEY,
    STATUS_KEY,
    TASK_KEY,
    SearchQuery,
    document_keys,
    document_tokens,
    facet_key,
)

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_CANCELLED = "cancelled"
MAX_PAGE_SIZE = 100
# How long a deleted interaction can still be restored (the undo) before the TTL index purges it.
DELETED_RETENTION_SECONDS = 120
OWNER_SESSION = "s:"
OWNER_USER = "u:"
OWNER_DELETED = "x:"
# Keyset pages are read in created_at windows that grow until the page is full: each query is an
# index range with a bounded number of candidates, whatever the size of the history.
FIRST_WINDOW = timedelta(minutes=1)
WINDOW_GROWTH = 4
WINDOW_TARGET_DOCS = 500
OLDEST = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
ONE_DAY = timedelta(days=1)
DAYS_SUFFIX = "_days"
DAY_INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("owner", ASCENDING), ("day", DESCENDING)], name="owner_day_desc"),
    IndexModel([("day", DESCENDING)], name="day_desc"),
)


def _day_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


MAX_WINDOW_MS = 100 * 365 * 24 * 3600 * 1000
MIN_WINDOW = timedelta(seconds=1)

INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("created_at", DESCENDING)], name="created_at_desc"),
    IndexModel([("session_id", ASCENDING)], name="session_id"),
    IndexModel([("model", ASCENDING)], name="model"),
    IndexModel(
        [("session_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="session_newest_first",
    ),
    # History browsing and search (app/services/history.py): every query is an equality on the
    # owner (plus at most one search key) and a bounded created_at window, so it stays index-backed
    # on MongoDB/Atlas and on SecantusDB alike.
    IndexModel([("owner", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="owner_newest_first"),
    IndexModel(
        [("owner", ASCENDING), ("search_tokens", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="owner_tokens_newest_first",
    ),
    IndexModel(
        [("owner", ASCENDING), ("search_keys", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="owner_keys_newest_first",
    ),
    # Soft-deleted interactions (kept for the undo) are purged by the server after a while.
    IndexModel([("deleted_at", ASCENDING)], name="deleted_ttl", expireAfterSeconds=DELETED_RETENTION_SECONDS),
    # Answer cache (app/services/answer_cache.py): an equality lookup of an earlier identical greedy answer.
    IndexModel([("owner", ASCENDING), ("cache_key", ASCENDING)], name="owner_cache_key"),
)


def utc_now() -> datetime:
    """Now in UTC, truncated to the millisecond that BSON dates keep (so cursors round-trip)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_interaction_id() -> str:
    return str(ObjectId())


def owner_key(*, session_id: str, user_id: str | None = None) -> str:
    """The one indexed field that says whose an interaction is: the user when logged in, else the visitor."""
    return f"{OWNER_USER}{user_id}" if user_id else f"{OWNER_SESSION}{session_id}"


@dataclass(frozen=True)
class Scope:
    """Whose interactions a query may see: this visitor, this logged-in user, or everyone (shared)."""

    session_id: str
    user_id: str | None = None
    shared: bool = False

    @property
    def owner(self) -> str:
        return owner_key(session_id=self.session_id, user_id=self.user_id)

    def query(self) -> dict[str, Any]:
        return {} if self.shared else {"owner": self.owner}

    def owner_fields(self) -> dict[str, Any]:
        """What a new interaction made in this scope carries (``Interaction(**scope.owner_fields(), …)``)."""
        return {"session_id": self.session_id, "user_id": self.user_id}


@dataclass
class Interaction:
    prompt: str
    output: str
    model: str
    task: str
    session_id: str
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    durations_ms: dict[str, float] = field(default_factory=dict)
    status: str = STATUS_OK
    error: str | None = None
    id: str = field(default_factory=new_interaction_id)
    created_at: datetime = field(default_factory=utc_now)
    user_id: str | None = None
    # Serving (issue #4): answered from the answer cache, its key, and the record it regenerates.
    cached: bool = False
    cached_from: str | None = None
    cache_key: str | None = None
    regenerated_from: str | None = None

    @property
    def owner(self) -> str:
        return owner_key(session_id=self.session_id, user_id=self.user_id)

    def search_fields(self) -> dict[str, Any]:
        """``search_tokens`` and ``search_keys`` (app/services/search.py), written with every document."""
        tokens = document_tokens(self.prompt, self.output)
        return {
            "search_tokens": tokens,
            "search_keys": document_keys(tokens, model=self.model, task=self.task, status=self.status),
        }

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": ObjectId(self.id),
            "prompt": self.prompt,
            "output": self.output,
            "model": self.model,
            "task": self.task,
            "params": dict(self.params),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "durations_ms": dict(self.durations_ms),
            "session_id": self.session_id,
            "created_at": self.created_at,
            "status": self.status,
            "error": self.error,
            "user_id": self.user_id,
            "owner": self.owner,
            "cached": self.cached,
            "cached_from": self.cached_from,
            "cache_key": self.cache_key,
            "regenerated_from": self.regenerated_from,
            **self.search_fields(),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Interaction:
        return cls(
            id=str(doc["_id"]),
            prompt=doc.get("prompt", ""),
            output=doc.get("output", ""),
            model=doc.get("model", ""),
            task=doc.get("task", ""),
            session_id=doc.get("session_id", ""),
            params=dict(doc.get("params") or {}),
            prompt_tokens=int(doc.get("prompt_tokens") or 0),
            output_tokens=int(doc.get("output_tokens") or 0),
            durations_ms=dict(doc.get("durations_ms") or {}),
            status=doc.get("status", STATUS_OK),
            error=doc.get("error"),
            created_at=doc["created_at"],
            user_id=doc.get("user_id"),
            cached=bool(doc.get("cached", False)),
            cached_from=doc.get("cached_from"),
            cache_key=doc.get("cache_key"),
            regenerated_from=doc.get("regenerated_from"),
        )


@dataclass(frozen=True)
class Page:
    items: list[Interaction]
    next_cursor: str | None


@dataclass(frozen=True)
class HistoryFilter:
    """What a history listing is narrowed to; ``since`` is inclusive, ``until`` exclusive (UTC)."""

    search: SearchQuery = field(default_factory=lambda: SearchQuery(words=(), prefix=""))
    model: str = ""
    task: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def driving_term(self) -> tuple[str, str] | None:
        """The one extra indexed equality a query rides on (the rest is checked per document)."""
        term = self.search.driving_term()
        if term is not None:
            return term
        for kind, value in ((MODEL_KEY, self.model), (TASK_KEY, self.task), (STATUS_KEY, self.status)):
            if value:
                return "search_keys", facet_key(kind, value)
        return None

    def accepts(self, doc: dict[str, Any]) -> bool:
        """Every condition, checked on a fetched document (the driving term alone was indexed)."""
        if doc.get("deleted_at") is not None:
            return False
        if self.model and doc.get("model") != self.model:
            return False
        if self.task and doc.get("task") != self.task:
            return False
        if self.status and doc.get("status", STATUS_OK) != self.status:
            return False
        if self.search.is_empty:
            return True
        return self.search.matches_tokens(doc.get("search_tokens") or ())


NO_FILTER = HistoryFilter()


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    duplicates: list[str]


@dataclass(frozen=True)
class _Position:
    created_at: datetime
    id: ObjectId


def encode_cursor(created_at: datetime, interaction_id: str, window: timedelta | None = None) -> str:
    """Opaque keyset cursor; ``window`` (a hint: how much time the next page likely spans) is optional."""
    millis = int(created_at.timestamp() * 1000)
    text = f"{millis}:{interaction_id}"
    if window is not None:
        text += f":{max(1, int(window.total_seconds() * 1000))}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_parts(cursor: str) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(":")
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor() from None
    if len(parts) not in (2, 3):
        raise InvalidCursor()
    return parts


def cursor_window(cursor: str) -> timedelta | None:
    """The window hint a cursor carries (``None`` for cursors without one)."""
    parts = _cursor_parts(cursor)
    if len(parts) < 3:
        return None
    try:
        millis = int(parts[2])
    except ValueError:
        raise InvalidCursor() from None
    if not 0 < millis <= MAX_WINDOW_MS:
        raise InvalidCursor()
    return timedelta(milliseconds=millis)


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId]:
    parts = _cursor_parts(cursor)
    try:
        cursor_window(cursor)
        return datetime.fromtimestamp(int(parts[0]) / 1000, UTC), ObjectId(parts[1])
    except (ValueError, InvalidId, OverflowError, OSError):
        raise InvalidCursor() from None


def parse_interaction_id(interaction_id: str) -> ObjectId:
    if not ObjectId.is_valid(interaction_id):
        raise InteractionNotFound(INTERACTION_NOT_FOUND)
    return ObjectId(interaction_id)


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Turn any PyMongo failure into ``StoreUnavailable`` (logged once, with the cause)."""
    try:
        yield
    except PyMongoError as exc:
        logger.error("MongoDB %s failed: %s", action, exc.__class__.__name__, exc_info=exc)
        count_store_error(action=action)
        raise StoreUnavailable(STORE_UNAVAILABLE) from exc


class InteractionRepository:
    def __init__(self, *, uri: str, db_name: str, collection_name: str, timeout_ms: int = 3000) -> None:
        self._uri = uri
        self._db_name = db_name
        self._collection_name = collection_name
        self._timeout_ms = timeout_ms
        self._client: MongoClient[dict[str, Any]] | None = None
        self._client_pid: int | None = None
        self._lock = threading.Lock()

    # --- connection -------------------------------------------------------------------------
    @property
    def client(self) -> MongoClient[dict[str, Any]]:
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self._connect()
                    self._client_pid = pid
        return self._client

    def _connect(self) -> MongoClient[dict[str, Any]]:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self._uri,
            serverSelectionTimeoutMS=self._timeout_ms,
            connectTimeoutMS=self._timeout_ms,
            socketTimeoutMS=max(self._timeout_ms * 4, 10_000),
            tz_aware=True,
            appname="django_hf_ml",
        )
        logger.info("MongoDB client created for %s (db=%s)", redact_uri(self._uri), self._db_name)
        return client

    @property
    def collection(self) -> Collection[dict[str, Any]]:
        return self.client[self._db_name][self._collection_name]

    @property
    def days(self) -> Collection[dict[str, Any]]:
        """One small document per (owner, UTC day) with interactions: where history pages can jump to."""
        return self.client[self._db_name][f"{self._collection_name}{DAYS_SUFFIX}"]

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._client_pid == os.getpid():
                self._client.close()
            self._client = None
            self._client_pid = None

    def ping(self) -> None:
        with store_errors("ping"):
            self.client.admin.command("ping")

    def ensure_indexes(self) -> list[str]:
        with store_errors("index creation"):
            names = self.collection.create_indexes(list(INDEXES))
            names += self.days.create_indexes(list(DAY_INDEXES))
        logger.info("MongoDB indexes ensured on %s.%s: %s", self._db_name, self._collection_name, ", ".join(names))
        return names

    # --- writes -------------------------------------------------------------------------------
    def insert(self, interaction: Interaction) -> None:
        """Store ``interaction``; a retried write of the same id is a no-op, not a duplicate."""
        with store_errors("insert"):
            try:
                self.collection.insert_one(interaction.to_document())
            except DuplicateKeyError:
                logger.info("Interaction %s already stored; retry ignored", interaction.id)
            self._record_days([(interaction.owner, interaction.created_at)])

    def _record_days(self, entries: Iterable[tuple[str, datetime]]) -> None:
        """Remember, per owner and UTC day, the newest interaction time (history pages skip empty stretches)."""
        newest: dict[tuple[str, datetime], datetime] = {}
        for owner, created_at in entries:
            key = (owner, _day_of(created_at))
            newest[key] = max(created_at, newest.get(key, created_at))
        if not newest:
            return
        updates = [
            UpdateOne(
                {"_id": f"{owner}|{day:%Y-%m-%d}"},
                {"$set": {"owner": owner, "day": day}, "$max": {"newest": moment}},
                upsert=True,
            )
            for (owner, day), moment in newest.items()
        ]
        self.days.bulk_write(updates, ordered=False)

    def _newest_before(self, scope: Scope, before: datetime) -> datetime | None:
        """The newest recorded interaction time before ``before`` (via the day documents), or None."""
        query: dict[str, Any] = {**scope.query(), "day": {"$lt": before}}
        with store_errors("page"):
            for doc in self.days.find(query).sort([("day", DESCENDING)]).limit(1):
                if doc["newest"] < before:
                    return doc["newest"]
                return before - ONE_MS  # that day is still active just before ``before``
        return None

    # --- reads ---------------------------------------------------------------------------------
    def get(self, interaction_id: str, *, scope: Scope) -> Interaction:
        object_id = parse_interaction_id(interaction_id)
        with store_errors("read"):
            doc = self.collection.find_one({"_id": object_id, **scope.query()})
        if doc is None:
            raise InteractionNotFound(INTERACTION_NOT_FOUND)
        return Interaction.from_document(doc)

    def find_cached(self, *, scope: Scope, cache_key: str) -> Interaction | None:
        """An earlier complete answer of this owner with the same answer-cache key (index ``owner_cache_key``)."""
        with store_errors("cache lookup"):
            doc = self.collection.find_one({"owner": scope.owner, "cache_key": cache_key, "status": STATUS_OK})
        return Interaction.from_document(doc) if doc is not None else None

    def page(
        self, *, scope: Scope, cursor: str | None = None, limit: int = 20, filters: HistoryFilter = NO_FILTER
    ) -> Page:
        """Newest first, keyset-paginated on (created_at, _id); ``limit + 1`` tells if more exist."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        after = _Position(*decode_cursor(cursor)) if cursor else None
        hint = cursor_window(cursor) if cursor else None
        docs: list[dict[str, Any]] = []
        for doc in self._scan(scope=scope, filters=filters, after=after, want=limit + 1, window=hint):
            docs.append(doc)
            if len(docs) > limit:
                break
        items = [Interaction.from_document(doc) for doc in docs[:limit]]
        if len(docs) <= limit:
            return Page(items=items, next_cursor=None)
        # The next page likely spans as much time as this one took to fill: start there.
        top = after.created_at if after is not None else items[0].created_at
        span = (top - items[-1].created_at) * (limit + 1) / limit * 1.25
        window = min(max(span, MIN_WINDOW), timedelta(milliseconds=MAX_WINDOW_MS))
        return Page(items=items, next_cursor=encode_cursor(items[-1].created_at, items[-1].id, window))

    def iter_interactions(
        self, *, scope: Scope, filters: HistoryFilter = NO_FILTER, cursor: str | None = None
    ) -> Iterator[Interaction]:
        """Every matching interaction, newest first, read window by window (never all at once)."""
        after = _Position(*decode_cursor(cursor)) if cursor else None
        for doc in self._scan(scope=scope, filters=filters, after=after, want=None):
            yield Interaction.from_document(doc)

    def _scan(
        self,
        *,
        scope: Scope,
        filters: HistoryFilter,
        after: _Position | None,
        want: int | None,
        window: timedelta | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Matching documents in (created_at desc, _id desc) order, strictly after ``after``.

        Each query is ``{owner, [one search key], created_at in [lo, hi)}`` — an index range — and
        the next window is sized from what the last one held (×4 when empty, at most ×16), so a page
        costs about the same at 1k or 100k interactions; SecantusDB materialises every match of a
        query before sorting, so an unbounded range would cost the whole history. ``filters.accepts``
        checks the remaining conditions on each fetched document.
        """
        base: dict[str, Any] = dict(scope.query())
        term = filters.driving_term()
        if term is not None:
            base[term[0]] = term[1]
        # When the indexed query is the whole condition, MongoDB may stop at ``want`` documents.
        exact = (
            not scope.shared
            and filters.search.is_empty
            and sum(bool(value) for value in (filters.model, filters.task, filters.status)) <= 1
        )
        upper = filters.until
        found = 0
        if after is not None and (upper is None or after.created_at < upper):
            # Same millisecond, smaller _id first: one exact index lookup for the ties.
            ties = {**base, "created_at": after.created_at, "_id": {"$lt": after.id}}
            for doc in self._window(ties, filters, exact=exact, want=want):
                found += 1
                yield doc
            upper = after.created_at
        lower_limit = filters.since or OLDEST
        window = window or FIRST_WINDOW
        newest_seen: datetime | None = None
        in_windows = 0
        while True:
            if upper is not None and upper <= lower_limit:
                return
            top = upper if upper is not None else utc_now()
            lower = top - window
            last = lower <= lower_limit
            condition: dict[str, Any] = {}
            if not last or filters.since is not None:
                # ``$gt`` one millisecond earlier means ``$gte`` (BSON dates are milliseconds); SecantusDB
                # 0.7 drops the inclusive end of a range walked on a descending index, ``$gt`` is exact.
                condition["$gt"] = max(lower, lower_limit) - ONE_MS
            if upper is not None:
                condition["$lt"] = upper
            query = {**base, "created_at": condition} if condition else dict(base)
            remaining = None if want is None else want - found
            batch = 0
            for doc in self._window(query, filters, exact=exact, want=remaining):
                batch += 1
                found += 1
                newest_seen = newest_seen or doc["created_at"]
                yield doc
            if last:
                return
            upper = max(lower, lower_limit)
            in_windows += batch
            if batch == 0:
                # Nothing here: jump over the stretch the day documents say is empty (after one check,
                # normally empty, so a write that bypassed the repository is still found).
                target = self._newest_before(scope, upper)
                skip_to = max(target + ONE_MS if target is not None else lower_limit, lower_limit)
                if skip_to < upper:
                    check = {**base, "created_at": {"$gt": skip_to - ONE_MS, "$lt": upper}}
                    for doc in self._window(check, filters, exact=exact, want=None if want is None else want - found):
                        found += 1
                        newest_seen = newest_seen or doc["created_at"]
                        yield doc
                    upper = skip_to
                    if target is None:
                        return
                    continue
            window = self._next_window(window, lower, batch, in_windows, newest_seen, want, found)

    @staticmethod
    def _next_window(
        window: timedelta,
        lower: datetime,
        batch: int,
        in_windows: int,
        newest_seen: datetime | None,
        want: int | None,
        found: int,
    ) -> timedelta:
        """Size the next window from the density seen so far (empty gaps before the first hit do not count)."""
        if batch == 0 or newest_seen is None:
            grown = window * WINDOW_GROWTH
        else:
            needed = WINDOW_TARGET_DOCS if want is None else max(1, want - found)
            covered = max(newest_seen - lower, ONE_MS)
            grown = covered * (needed / in_windows) * 1.25
            grown = min(max(grown, window / 2, ONE_MS * 10), window * 16)
        return min(grown, timedelta(milliseconds=MAX_WINDOW_MS))

    def _window(
        self, query: dict[str, Any], filters: HistoryFilter, *, exact: bool, want: int | None
    ) -> Iterator[dict[str, Any]]:
        with store_errors("page"):
            cursor = self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            if exact and want is not None:
                cursor = cursor.limit(want)
            docs = list(cursor) if want is not None else cursor
            for doc in docs:
                if filters.accepts(doc):
                    yield doc

    # --- history actions --------------------------------------------------------------------
    def soft_delete(self, interaction_id: str, *, scope: Scope) -> Interaction:
        """Hide an interaction from every listing; ``restore`` brings it back until the TTL purges it."""
        object_id = parse_interaction_id(interaction_id)
        with store_errors("delete"):
            doc = self.collection.find_one({"_id": object_id, **scope.query()})
            if doc is None or doc.get("deleted_at") is not None:
                raise InteractionNotFound(INTERACTION_NOT_FOUND)
            owner = doc.get("owner") or owner_key(session_id=doc.get("session_id", ""), user_id=doc.get("user_id"))
            result = self.collection.update_one(
                {"_id": object_id, "owner": owner},
                {"$set": {"owner": OWNER_DELETED + owner, "deleted_owner": owner, "deleted_at": utc_now()}},
            )
        if result.modified_count != 1:
            raise InteractionNotFound(INTERACTION_NOT_FOUND)
        logger.info("Interaction %s deleted (restorable for %s s)", interaction_id, DELETED_RETENTION_SECONDS)
        return Interaction.from_document(doc)

    def restore(self, interaction_id: str, *, scope: Scope) -> Interaction:
        """Undo ``soft_delete`` (only for the scope that deleted it)."""
        object_id = parse_interaction_id(interaction_id)
        with store_errors("restore"):
            doc = self.collection.find_one({"_id": object_id})
            owner = (doc or {}).get("deleted_owner")
            if doc is None or not owner or (not scope.shared and owner != scope.owner):
                raise InteractionNotFound(INTERACTION_NOT_FOUND)
            self.collection.update_one(
                {"_id": object_id, "owner": OWNER_DELETED + owner},
                {"$set": {"owner": owner}, "$unset": {"deleted_owner": "", "deleted_at": ""}},
            )
        doc["owner"] = owner
        return Interaction.from_document(doc)

    def delete_all(self, *, scope: Scope) -> int:
        """Delete every interaction of ``scope`` for good (no undo); returns how many."""
        with store_errors("delete all"):
            deleted = self.collection.delete_many(scope.query()).deleted_count
            self.days.delete_many(scope.query())
            if not scope.shared:
                self.collection.delete_many({"owner": OWNER_DELETED + scope.owner})
        logger.info("Deleted %s interactions of one history", deleted)
        return deleted

    def claim(self, *, session_id: str, user_id: str) -> int:
        """Move the interactions a visitor made before logging in to the user; returns how many."""
        with store_errors("claim"):
            old_owner = owner_key(session_id=session_id)
            new_owner = owner_key(session_id=session_id, user_id=user_id)
            result = self.collection.update_many(
                {"owner": old_owner}, {"$set": {"owner": new_owner, "user_id": user_id}}
            )
            days = list(self.days.find({"owner": old_owner}))
            self._record_days((new_owner, day["newest"]) for day in days)
            self.days.delete_many({"owner": old_owner})
        logger.info("Claimed %s interactions for user %s", result.modified_count, user_id)
        return result.modified_count

    def count_claimable(self, *, session_id: str) -> bool:
        """Whether this visitor has interactions made before login (one indexed lookup)."""
        with store_errors("count"):
            return self.collection.find_one({"owner": owner_key(session_id=session_id)}, {"_id": 1}) is not None

    def import_batch(self, interactions: list[Interaction]) -> ImportResult:
        """Insert interactions that are not stored yet; an id that exists is reported, not overwritten."""
        if not interactions:
            return ImportResult(inserted=0, duplicates=[])
        with store_errors("import"):
            try:
                result = self.collection.insert_many([item.to_document() for item in interactions], ordered=False)
                outcome = ImportResult(inserted=len(result.inserted_ids), duplicates=[])
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != 11000 for error in errors):
                    raise
                duplicates = [interactions[error["index"]].id for error in errors]
                outcome = ImportResult(inserted=int(exc.details.get("nInserted", 0)), duplicates=duplicates)
            self._record_days((item.owner, item.created_at) for item in interactions)
        return outcome

    def rebuild_days(self, *, batch: int = 2000) -> int:
        """Recreate the day documents from the interactions (after a backfill or a write that bypassed us)."""
        entries: list[tuple[str, datetime]] = []
        count = 0
        with store_errors("rebuild days"):
            for doc in self.collection.find({}, {"owner": 1, "created_at": 1}):
                owner = doc.get("owner")
                if not owner or owner.startswith(OWNER_DELETED) or "created_at" not in doc:
                    continue
                entries.append((owner, doc["created_at"]))
                if len(entries) >= batch:
                    self._record_days(entries)
                    count += len(entries)
                    entries = []
            self._record_days(entries)
        return count + len(entries)

    def backfill_search_fields(self, *, batch: int = 500, progress: Any = None) -> int:
        """Add ``owner``/``search_tokens``/``search_keys`` to documents written before they existed."""
        missing = {"search_keys": {"$exists": False}}
        done = 0
        with store_errors("backfill"):
            while True:
                docs = list(self.collection.find(missing).limit(batch))
                if not docs:
                    return done
                updates = []
                days: list[tuple[str, datetime]] = []
                for doc in docs:
                    interaction = Interaction.from_document({"created_at": OLDEST, **doc})
                    fields = interaction.search_fields()
                    fields["owner"] = doc.get("owner") or interaction.owner
                    updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": fields}))
                    days.append((fields["owner"], interaction.created_at))
                self.collection.bulk_write(updates, ordered=False)
                self._record_days(days)
                done += len(docs)
                if progress is not None:
                    progress(len(docs))

    def count(self, *, scope: Scope) -> int:
        with store_errors("count"):
            return self.collection.count_documents(scope.query())


def redact_uri(uri: str) -> str:
    """Hide the password in a MongoDB URI so it can be logged."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest:
        return uri
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


_repository: InteractionRepository | None = None
_repository_lock = threading.Lock()


def get_repository() -> InteractionRepository:
    """The process-wide repository built from settings (the client itself connects lazily)."""
    global _repository
    if _repository is None:
        with _repository_lock:
            if _repository is None:
                from django.conf import settings

                _repository = InteractionRepository(
                    uri=settings.MONGO_URI,
                    db_name=settings.MONGO_DB_NAME,
                    collection_name=settings.MONGO_COLLECTION,
                    timeout_ms=settings.MONGO_TIMEOUT_MS,
                )
    return _repository


def reset_repository() -> None:
    """Forget the process-wide repository (tests, settings changes)."""
    global _repository
    with _repository_lock:
        if _repository is not None:
            _repository.close()
        _repository = None
