"""Store reads for conversations: every turn of one thread, turn counts for a page, the /v1 thread lookup.

Each is one query on the interactions collection, scoped like every read (``Scope.query()``), and rides
on the ``owner_conversation`` / ``owner_thread_hash`` indexes. A conversation's first turn may predate
``conversation_id`` (its own id names the thread then), so "the records of conversation C" is "those
with ``conversation_id`` C, plus the record whose id is C when it has none".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId

from app.domain.conversation import MAX_CONVERSATION_RECORDS
from app.domain.ids import is_interaction_id
from app.domain.interaction import STATUS_OK, Interaction, Scope
from app.services.mongo_documents import from_document
from app.services.mongo_repo import InteractionRepository, store_errors

# Fields a conversation page never needs (search upkeep, the /v1 wire conversation): not read.
_SKIPPED = {"search_tokens": 0, "search_keys": 0, "embedding": 0, "messages": 0}


def _members(conversation_ids: list[str]) -> dict[str, Any]:
    return {
        "$or": [
            {"conversation_id": {"$in": conversation_ids}},
            {"_id": {"$in": [ObjectId(cid) for cid in conversation_ids]}, "conversation_id": None},
        ]
    }


def _scoped(scope: Scope, condition: dict[str, Any]) -> dict[str, Any]:
    return {**scope.query(), "deleted_at": None, **condition}


def conversation_records(
    repo: InteractionRepository, *, scope: Scope, conversation_id: str, limit: int = MAX_CONVERSATION_RECORDS
) -> list[Interaction]:
    """Every turn (all branches) of one of the visitor's conversations, at most ``limit``; [] for none."""
    if not is_interaction_id(conversation_id):
        return []
    query = _scoped(scope, _members([conversation_id.lower()]))
    with store_errors("conversation"):
        docs = list(repo.collection.find(query, _SKIPPED).limit(limit))
    return [from_document(doc) for doc in docs]


def turn_counts(repo: InteractionRepository, *, scope: Scope, conversation_ids: Iterable[str]) -> dict[str, int]:
    """How many turns each of these conversations has (one aggregation for the whole page)."""
    ids = sorted({cid.lower() for cid in conversation_ids if is_interaction_id(cid)})
    if not ids:
        return {}
    pipeline: list[dict[str, Any]] = [
        {"$match": _scoped(scope, _members(ids))},
        {"$group": {"_id": {"$ifNull": ["$conversation_id", {"$toString": "$_id"}]}, "n": {"$sum": 1}}},
    ]
    with store_errors("conversation counts"):
        rows = list(repo.collection.aggregate(pipeline))
    return {str(row["_id"]): int(row["n"]) for row in rows}


def find_thread_end(
    repo: InteractionRepository, *, scope: Scope, thread_hash: str, api_key: str | None
) -> Interaction | None:
    """The newest finished /v1 record of this owner and key whose conversation plus answer has this fingerprint."""
    query = {"owner": scope.owner, "thread_hash": thread_hash, "status": STATUS_OK, "api_key": api_key}
    with store_errors("thread lookup"):
        docs = list(repo.collection.find(query, _SKIPPED).limit(20))
    if not docs:
        return None
    return from_document(max(docs, key=lambda doc: (doc["created_at"], doc["_id"])))
