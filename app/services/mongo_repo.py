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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from app.errors import INTERACTION_NOT_FOUND, STORE_UNAVAILABLE, InteractionNotFound, InvalidCursor, StoreUnavailable

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_CANCELLED = "cancelled"
MAX_PAGE_SIZE = 100

INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("created_at", DESCENDING)], name="created_at_desc"),
    IndexModel([("session_id", ASCENDING)], name="session_id"),
    IndexModel([("model", ASCENDING)], name="model"),
    IndexModel(
        [("session_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name="session_newest_first",
    ),
)


def utc_now() -> datetime:
    """Now in UTC, truncated to the millisecond that BSON dates keep (so cursors round-trip)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_interaction_id() -> str:
    return str(ObjectId())


@dataclass(frozen=True)
class Scope:
    """Whose interactions a query may see."""

    session_id: str

    def query(self) -> dict[str, Any]:
        return {"session_id": self.session_id}


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
        )


@dataclass(frozen=True)
class Page:
    items: list[Interaction]
    next_cursor: str | None


def encode_cursor(created_at: datetime, interaction_id: str) -> str:
    millis = int(created_at.timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}:{interaction_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        millis_text, id_text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(":")
        return datetime.fromtimestamp(int(millis_text) / 1000, UTC), ObjectId(id_text)
    except (ValueError, UnicodeError, binascii.Error, InvalidId, OverflowError, OSError):
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

    # --- reads ---------------------------------------------------------------------------------
    def get(self, interaction_id: str, *, scope: Scope) -> Interaction:
        object_id = parse_interaction_id(interaction_id)
        with store_errors("read"):
            doc = self.collection.find_one({"_id": object_id, **scope.query()})
        if doc is None:
            raise InteractionNotFound(INTERACTION_NOT_FOUND)
        return Interaction.from_document(doc)

    def page(self, *, scope: Scope, cursor: str | None = None, limit: int = 20) -> Page:
        """Newest first, keyset-paginated on (created_at, _id); ``limit + 1`` tells if more exist."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        query = scope.query()
        if cursor:
            created_at, object_id = decode_cursor(cursor)
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": object_id}},
            ]
        with store_errors("page"):
            docs = list(
                self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1)
            )
        items = [Interaction.from_document(doc) for doc in docs[:limit]]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(docs) > limit else None
        return Page(items=items, next_cursor=next_cursor)

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
