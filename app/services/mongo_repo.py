"""MongoDB repository for interactions (PyMongo only).

One ``MongoClient`` per process, created lazily in the process that uses it (PyMongo is not
fork-safe, so a changed pid means a new client). Every PyMongo failure becomes
``StoreUnavailable``. Only features that both MongoDB/Atlas and SecantusDB support are used:
no ``$text``, no ``$where``, no compiled regular expressions.

The document layout lives in ``mongo_documents``, the history scan in ``mongo_scan`` and whole-
collection maintenance in ``mongo_admin``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from pymongo import MongoClient, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from app.domain.filters import MAX_PAGE_SIZE, NO_FILTER, HistoryFilter
from app.domain.ids import utc_now
from app.domain.interaction import (
    OWNER_DELETED,
    STATUS_OK,
    STATUS_PENDING,
    ImportResult,
    Interaction,
    Page,
    Scope,
    owner_key,
)
from app.domain.search import document_tokens
from app.errors import INTERACTION_NOT_FOUND, STORE_UNAVAILABLE, InteractionNotFound, StoreUnavailable
from app.services.metrics import count_store_error
from app.services.mongo_documents import (
    Position,
    cursor_window,
    decode_cursor,
    encode_cursor,
    from_document,
    parse_interaction_id,
    to_document,
)
from app.services.mongo_indexes import (
    DAY_INDEXES,
    DELETED_RETENTION_SECONDS,
    INDEXES,
    RATE_INDEXES,
    RATE_SUFFIX,
    TEMPLATE_INDEXES,
    TEMPLATES_SUFFIX,
)
from app.services.mongo_scan import ScanRequest, next_page_window, record_days, scan_history
from app.services.per_process import PerProcess
from app.services.search import hooks as search_hooks
from app.services.search.atlas import ensure_search_indexes
from app.services.search.vocabulary import VOCABULARY_INDEXES, VOCABULARY_SUFFIX, copy_owner, forget_owner, record_words

logger = logging.getLogger(__name__)

DAYS_SUFFIX = "_days"


def durable_write_concern(configured: WriteConcern) -> WriteConcern:
    """The write concern every interaction write uses: journaled (``j=True``) unless the URI chose.

    A URI that sets ``journal=`` keeps exactly what it says, and so does ``w=0`` (unacknowledged writes
    cannot wait for the journal). Otherwise the URI's ``w`` (or the server's default) and ``wTimeoutMS``
    stay and ``j=True`` is added: the server acknowledges a write only once it is in its on-disk journal,
    so an acknowledged interaction survives a kill -9 of the store.
    """
    document = configured.document
    if "j" in document or "fsync" in document or not configured.acknowledged:
        return configured
    return WriteConcern(w=document.get("w"), wtimeout=document.get("wtimeout"), j=True)


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
    def __init__(
        self, *, uri: str, db_name: str, collection_name: str, timeout_ms: int = 3000, windowed_scan: bool = True
    ) -> None:
        self._uri = uri
        self._windowed_scan = windowed_scan
        self._db_name = db_name
        self._collection_name = collection_name
        self._timeout_ms = timeout_ms
        self._client: MongoClient[dict[str, Any]] | None = None
        self._client_pid: int | None = None
        self._write_concern = WriteConcern(j=True)
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
        self._write_concern = durable_write_concern(client.write_concern)
        logger.info(
            "MongoDB client created for %s (db=%s, write concern %s)",
            redact_uri(self._uri),
            self._db_name,
            self._write_concern.document,
        )
        return client

    @property
    def write_concern(self) -> WriteConcern:
        """What every write through this repository waits for (see ``durable_write_concern``)."""
        _ = self.client
        return self._write_concern

    @property
    def database(self) -> Database[dict[str, Any]]:
        """The database with the durable write concern: every collection taken from it inherits it."""
        client = self.client
        return client.get_database(self._db_name, write_concern=self._write_concern)

    @property
    def collection(self) -> Collection[dict[str, Any]]:
        return self.database[self._collection_name]

    @property
    def days(self) -> Collection[dict[str, Any]]:
        """One small document per (owner, UTC day) with interactions: where history pages can jump to."""
        return self.database[f"{self._collection_name}{DAYS_SUFFIX}"]

    def sibling(self, suffix: str) -> Collection[dict[str, Any]]:
        """A helper collection named after the interactions one (``<collection><suffix>``)."""
        return self.database[f"{self._collection_name}{suffix}"]

    @property
    def vocabulary(self) -> Collection[dict[str, Any]]:
        """Each owner's words by length, for typo tolerance (app/services/search/vocabulary.py)."""
        return self.client[self._db_name][f"{self._collection_name}{VOCABULARY_SUFFIX}"]

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
            names += self.vocabulary.create_indexes(list(VOCABULARY_INDEXES))
            names += ensure_search_indexes(self.collection)
            names += self.sibling(RATE_SUFFIX).create_indexes(list(RATE_INDEXES))
            names += self.sibling(TEMPLATES_SUFFIX).create_indexes(list(TEMPLATE_INDEXES))
        logger.info("MongoDB indexes ensured on %s.%s: %s", self._db_name, self._collection_name, ", ".join(names))
        return names

    # --- writes -------------------------------------------------------------------------------
    def insert(self, interaction: Interaction) -> None:
        """Store ``interaction``; a retried write of the same id is a no-op, not a duplicate."""
        with store_errors("insert"):
            try:
                self.collection.insert_one(to_document(interaction))
            except DuplicateKeyError:
                logger.info("Interaction %s already stored; retry ignored", interaction.id)
            record_days(self.days, [(interaction.owner, interaction.created_at)])
        if interaction.status != STATUS_PENDING:  # a generation is indexed for search once it has its answer
            self.after_store([interaction])

    def after_store(self, interactions: list[Interaction]) -> None:
        """Search upkeep: the owners' vocabularies now, embeddings queued for a background thread."""
        record_words(
            self.vocabulary, ((item.owner, document_tokens(item.prompt, item.output)) for item in interactions)
        )
        search_hooks.stored([item.id for item in interactions])

    # --- reads ---------------------------------------------------------------------------------
    def get(self, interaction_id: str, *, scope: Scope) -> Interaction:
        object_id = parse_interaction_id(interaction_id)
        with store_errors("read"):
            doc = self.collection.find_one({"_id": object_id, **scope.query()})
        if doc is None:
            raise InteractionNotFound(INTERACTION_NOT_FOUND)
        return from_document(doc)

    def find_cached(self, *, scope: Scope, cache_key: str) -> Interaction | None:
        """An earlier complete answer of this owner with the same answer-cache key (index ``owner_cache_key``)."""
        with store_errors("cache lookup"):
            doc = self.collection.find_one({"owner": scope.owner, "cache_key": cache_key, "status": STATUS_OK})
        return from_document(doc) if doc is not None else None

    def page(
        self, *, scope: Scope, cursor: str | None = None, limit: int = 20, filters: HistoryFilter = NO_FILTER
    ) -> Page:
        """Newest first, keyset-paginated on (created_at, _id); ``limit + 1`` tells if more exist."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        after = Position(*decode_cursor(cursor)) if cursor else None
        hint = cursor_window(cursor) if cursor else None
        docs: list[dict[str, Any]] = []
        with store_errors("page"):
            request = ScanRequest(scope=scope, filters=filters, after=after, want=limit + 1, window=hint)
            for doc in self._scan(request):
                docs.append(doc)
                if len(docs) > limit:
                    break
        items = [from_document(doc) for doc in docs[:limit]]
        if len(docs) <= limit:
            return Page(items=items, next_cursor=None)
        top = after.created_at if after is not None else items[0].created_at
        window = next_page_window(top=top, bottom=items[-1].created_at, limit=limit)
        return Page(items=items, next_cursor=encode_cursor(items[-1].created_at, items[-1].id, window))

    def iter_interactions(
        self, *, scope: Scope, filters: HistoryFilter = NO_FILTER, cursor: str | None = None
    ) -> Iterator[Interaction]:
        """Every matching interaction, newest first, read window by window (never all at once)."""
        after = Position(*decode_cursor(cursor)) if cursor else None
        with store_errors("page"):
            for doc in self._scan(ScanRequest(scope=scope, filters=filters, after=after)):
                yield from_document(doc)

    def _scan(self, request: ScanRequest) -> Iterator[dict[str, Any]]:
        return scan_history(self.collection, self.days, request, windowed=self._windowed_scan)

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
        return from_document(doc)

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
        return from_document(doc)

    def delete_all(self, *, scope: Scope) -> int:
        """Delete every interaction of ``scope`` for good (no undo); returns how many."""
        with store_errors("delete all"):
            deleted = self.collection.delete_many(scope.query()).deleted_count
            self.days.delete_many(scope.query())
            forget_owner(self.vocabulary, scope.query())
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
                # embedded_at moves so the new owner's in-memory vector index picks the records up.
                {"owner": old_owner},
                {"$set": {"owner": new_owner, "user_id": user_id, "embedded_at": utc_now()}},
            )
            copy_owner(self.vocabulary, source=old_owner, target=new_owner)
            days = list(self.days.find({"owner": old_owner}))
            record_days(self.days, [(new_owner, day["newest"]) for day in days])
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
                result = self.collection.insert_many([to_document(item) for item in interactions], ordered=False)
                outcome = ImportResult(inserted=len(result.inserted_ids), duplicates=[])
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != 11000 for error in errors):
                    raise
                duplicates = [interactions[error["index"]].id for error in errors]
                outcome = ImportResult(inserted=int(exc.details.get("nInserted", 0)), duplicates=duplicates)
            record_days(self.days, [(item.owner, item.created_at) for item in interactions])
        self.after_store(interactions)
        return outcome

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


def _build_repository() -> InteractionRepository:
    return InteractionRepository(
        uri=settings.MONGO_URI,
        db_name=settings.MONGO_DB_NAME,
        collection_name=settings.MONGO_COLLECTION,
        timeout_ms=settings.MONGO_TIMEOUT_MS,
        windowed_scan=getattr(settings, "MONGO_WINDOWED_SCAN", True),
    )


# The client itself connects lazily, in the process that uses it.
_repository = PerProcess(_build_repository, close=InteractionRepository.close)
get_repository = _repository.get
reset_repository = _repository.reset  # tests, settings changes
