"""The generation as a durable record in MongoDB: final writes, checkpoints, Stop markers, reaping.

Functions over ``InteractionRepository.collection``; every PyMongo failure becomes
``StoreUnavailable`` through ``mongo_repo.store_errors``. The record contract (also read by the
feed that follows a generation from another process):

* ``status``: ``pending`` while generating, then ``ok`` | ``cancelled`` | ``error`` | ``interrupted``;
* ``output``: the text so far while pending; ``heartbeat_at``: the last checkpoint;
* ``checkpoint``: +1 per checkpoint write; ``stop_requested_at``: set by Stop from any process;
* ``worker``: ``"<hostname>:<pid>"`` of the generating process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from app.domain.interaction import STATUS_INTERRUPTED, STATUS_PENDING, Interaction, Scope
from app.services.mongo_documents import from_document, parse_interaction_id, to_document
from app.services.mongo_marks import replace_final
from app.services.mongo_repo import InteractionRepository, store_errors
from app.services.mongo_scan import record_days

logger = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = "The server stopped while generating this answer. Retry to ask again."
FINISH_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class CheckpointAnswer:
    """What one checkpoint round trip learned: whether the record is still pending, and Stop."""

    pending: bool
    stop_requested: bool


def write_record(repo: InteractionRepository, interaction: Interaction) -> None:
    """The one write of an interaction (request path and outbox replay alike).

    A ``pending`` record is inserted once (a replay of it never overwrites anything, so a late replay
    cannot undo the final answer); any other record replaces the stored one with the same id (the
    final answer overwrites its pending record; writing it twice is a no-op). A record deleted in the
    meantime stays deleted.
    """
    if interaction.status == STATUS_PENDING:
        repo.insert(interaction)
        return
    document = to_document(interaction)
    with store_errors("final write"):
        # Stars and tags set while it was generating are carried over (app/services/mongo_marks.py).
        if not replace_final(repo, document):
            logger.info("Interaction %s was deleted while generating; final answer not stored", interaction.id)
            return
        record_days(repo.days, [(interaction.owner, interaction.created_at)])
    repo.after_store([interaction])


def discard_pending(repo: InteractionRepository, interaction_id: str) -> None:
    """Delete a pending record (its request was refused before it started)."""
    with store_errors("discard"):
        repo.collection.delete_one({"_id": parse_interaction_id(interaction_id), "status": STATUS_PENDING})


def checkpoint(
    repo: InteractionRepository, interaction_id: str, *, output: str, output_tokens: int, now: datetime
) -> CheckpointAnswer:
    """One round trip: store the text so far and the heartbeat, read back the Stop marker."""
    with store_errors("checkpoint"):
        doc = repo.collection.find_one_and_update(
            {"_id": parse_interaction_id(interaction_id), "status": STATUS_PENDING},
            {
                "$set": {"output": output, "output_tokens": output_tokens, "heartbeat_at": now},
                "$inc": {"checkpoint": 1},
            },
            projection={"stop_requested_at": 1},
            return_document=ReturnDocument.AFTER,
        )
    if doc is None:
        return CheckpointAnswer(pending=False, stop_requested=False)
    return CheckpointAnswer(pending=True, stop_requested=doc.get("stop_requested_at") is not None)


def stop_marker(repo: InteractionRepository, interaction_id: str) -> CheckpointAnswer:
    """Read only whether a Stop was asked (a checkpoint with nothing new to write)."""
    with store_errors("stop check"):
        doc = repo.collection.find_one(
            {"_id": parse_interaction_id(interaction_id), "status": STATUS_PENDING}, {"stop_requested_at": 1}
        )
    if doc is None:
        return CheckpointAnswer(pending=False, stop_requested=False)
    return CheckpointAnswer(pending=True, stop_requested=doc.get("stop_requested_at") is not None)


def request_stop(repo: InteractionRepository, interaction_id: str, *, scope: Scope, now: datetime) -> bool:
    """Mark the visitor's pending record as to be stopped; False when there is no such record."""
    object_id = parse_interaction_id(interaction_id)
    with store_errors("stop"):
        result = repo.collection.update_one(
            {"_id": object_id, "status": STATUS_PENDING, **scope.query()}, {"$set": {"stop_requested_at": now}}
        )
    return result.matched_count == 1


def find_record(repo: InteractionRepository, interaction_id: str, *, scope: Scope) -> Interaction | None:
    """The visitor's record with that id, whatever its status (None when absent)."""
    object_id = parse_interaction_id(interaction_id)
    with store_errors("read"):
        doc = repo.collection.find_one({"_id": object_id, **scope.query()})
    return from_document(doc) if doc is not None else None


def stale_pending(repo: InteractionRepository, *, cutoff: datetime, limit: int = 200) -> list[Interaction]:
    """Pending records nobody has checkpointed since ``cutoff`` (index ``status_heartbeat``)."""
    queries: tuple[dict[str, Any], ...] = (
        {"status": STATUS_PENDING, "heartbeat_at": {"$lt": cutoff}},
        {"status": STATUS_PENDING, "heartbeat_at": None, "created_at": {"$lt": cutoff}},
    )
    found: dict[str, Interaction] = {}
    with store_errors("reap scan"):
        for query in queries:
            for doc in repo.collection.find(query).limit(limit):
                found.setdefault(str(doc["_id"]), from_document(doc))
    return list(found.values())


def mark_interrupted(repo: InteractionRepository, record: Interaction) -> bool:
    """``record`` (as read) becomes ``interrupted`` with its partial text, unless it moved on meanwhile."""
    record.status = STATUS_INTERRUPTED
    record.finish_reason = FINISH_INTERRUPTED
    record.error = INTERRUPTED_MESSAGE
    update = {
        "status": record.status,
        "finish_reason": record.finish_reason,
        "error": record.error,
        **record.search_fields(),  # the status is a search key; the partial text is searchable
    }
    seen: Any = record.checkpoint if record.checkpoint else {"$in": [0, None]}  # a checkpoint since: still alive
    # A star or tag set since the read also moved ``marks_rev``: try again on the next sweep (mongo_marks.py).
    marks: Any = record.marks_rev if record.marks_rev else None
    with store_errors("reap"):
        result = repo.collection.update_one(
            {"_id": parse_interaction_id(record.id), "status": STATUS_PENDING, "checkpoint": seen, "marks_rev": marks},
            {"$set": update, "$inc": {"marks_rev": 1}},
        )
    if result.modified_count != 1:
        return False
    repo.after_store([record])  # the partial answer is searchable like any other
    return True
