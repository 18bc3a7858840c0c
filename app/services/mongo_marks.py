"""Stars and tags on stored interactions: targeted updates that never replace a record.

A mark update ``$set``s only ``starred``, ``tags`` and ``search_keys`` (the record's mark keys
swapped, every other key kept) and ``$inc``s ``marks_rev``. It is a compare-and-set on
``marks_rev``: the update only applies when the counter is still the one read, else it reads again
(``MARK_ATTEMPTS`` times, then ``MarksConflict``). Everything else that rewrites ``search_keys`` takes
part in the same protocol, so a mark never clobbers an answer and an answer never drops a mark:

* the final write of a generation (``replace_final``) replaces a never-marked record in one round trip
  (filter ``marks_rev: None``); a marked one is replaced with its stored marks carried over and the
  counter moved on;
* the reaper (``mongo_generation.mark_interrupted``) matches and moves the counter too.

Checkpoints (``output``, ``heartbeat_at``, ``checkpoint``) touch none of these fields, so starring a
``pending`` record and the generation's checkpoints never get in each other's way.
"""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app.domain.interaction import Interaction, Scope
from app.domain.marks import TAG_KEY, with_marks
from app.errors import INTERACTION_NOT_FOUND, InteractionNotFound, MarksConflict
from app.services.mongo_documents import from_document, parse_interaction_id
from app.services.mongo_repo import InteractionRepository, store_errors

logger = logging.getLogger(__name__)

MARK_ATTEMPTS = 8
MAX_OWNER_TAGS = 200
MAX_TAGGED_SCANNED = 5000
MARK_FIELDS = {"deleted_at": 1, "starred": 1, "tags": 1, "marks_rev": 1}


def _rev_condition(value: object) -> Any:
    """The filter value that matches exactly the ``marks_rev`` that was read (missing reads as None)."""
    return value if isinstance(value, int) else None


def set_marks(
    repo: InteractionRepository,
    interaction_id: str,
    *,
    scope: Scope,
    starred: bool | None = None,
    tags: list[str] | None = None,
) -> Interaction:
    """Change the star and/or the (already normalised) tags of one of ``scope``'s records."""
    object_id = parse_interaction_id(interaction_id)
    for _attempt in range(MARK_ATTEMPTS):
        with store_errors("mark"):
            doc = repo.collection.find_one({"_id": object_id, **scope.query()}, {"embedding": 0})
            if doc is None or doc.get("deleted_at") is not None:
                raise InteractionNotFound(INTERACTION_NOT_FOUND)
            current = from_document(doc)
            new_starred = current.starred if starred is None else starred
            new_tags = current.tags if tags is None else list(tags)
            stored_keys = doc.get("search_keys")
            base_keys = stored_keys if isinstance(stored_keys, list) else current.search_fields()["search_keys"]
            keys = with_marks(base_keys, tags=new_tags, starred=new_starred)
            result = repo.collection.update_one(
                {"_id": object_id, "owner": doc.get("owner"), "marks_rev": _rev_condition(doc.get("marks_rev"))},
                {
                    "$set": {"starred": new_starred, "tags": new_tags, "search_keys": keys},
                    "$inc": {"marks_rev": 1},
                },
            )
        if result.matched_count == 1:
            current.starred, current.tags, current.marks_rev = new_starred, new_tags, current.marks_rev + 1
            return current
    logger.warning("Marks of interaction %s not saved: %s conflicting writes", interaction_id, MARK_ATTEMPTS)
    raise MarksConflict()


def replace_final(repo: InteractionRepository, document: dict[str, Any]) -> bool:
    """Replace a generation's record by its final ``document``, keeping the marks the visitor set meanwhile.

    False when the record was deleted while generating (it stays deleted). Runs inside the caller's
    ``store_errors``.
    """
    object_id: ObjectId = document["_id"]
    for _attempt in range(MARK_ATTEMPTS):
        try:
            # Never marked (the usual case): one round trip, as before marks existed.
            unmarked = {"_id": object_id, "deleted_at": None, "marks_rev": None}
            repo.collection.replace_one(unmarked, document, upsert=True)
            return True
        except DuplicateKeyError:
            pass  # deleted meanwhile, or marked: look which
        stored = repo.collection.find_one({"_id": object_id}, MARK_FIELDS)
        if stored is None:
            continue  # gone (delete all): the next attempt inserts it again
        if stored.get("deleted_at") is not None:
            return False
        rev = stored.get("marks_rev")
        if not isinstance(rev, int):
            continue
        starred = stored.get("starred") is True
        tags = [tag for tag in stored.get("tags") or () if isinstance(tag, str)]
        merged = {
            **document,
            "starred": starred,
            "tags": tags,
            "marks_rev": rev + 1,
            "search_keys": with_marks(document.get("search_keys") or (), tags=tags, starred=starred),
        }
        result = repo.collection.replace_one({"_id": object_id, "deleted_at": None, "marks_rev": rev}, merged)
        if result.matched_count == 1:
            return True
    raise MarksConflict()


def owner_tags(repo: InteractionRepository, *, scope: Scope) -> list[tuple[str, int]]:
    """The tags ``scope``'s interactions carry, with how many carry each, most used first.

    Reads only tagged records (a range over the ``g:`` search keys of the owner's index), at most
    ``MAX_TAGGED_SCANNED`` of them.
    """
    query = {**scope.query(), "search_keys": {"$gte": TAG_KEY, "$lt": TAG_KEY[:-1] + chr(ord(TAG_KEY[-1]) + 1)}}
    counts: dict[str, int] = {}
    with store_errors("tags"):
        for doc in repo.collection.find(query, {"tags": 1, "deleted_at": 1}).limit(MAX_TAGGED_SCANNED):
            if doc.get("deleted_at") is not None:
                continue
            for tag in doc.get("tags") or ():
                if isinstance(tag, str):
                    counts[tag] = counts.get(tag, 0) + 1
    ordered = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ordered[:MAX_OWNER_TAGS]
