"""Maintenance over the whole collection: rebuild the day documents, backfill search fields.

Run by management commands (``backfill_search_tokens``), never on a request path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from pymongo import UpdateOne

from app.domain.interaction import OWNER_DELETED
from app.services.mongo_documents import from_document
from app.services.mongo_repo import InteractionRepository, store_errors
from app.services.mongo_scan import OLDEST, record_days

logger = logging.getLogger(__name__)


def rebuild_days(repository: InteractionRepository, *, batch: int = 2000) -> int:
    """Recreate the day documents from the interactions (after a backfill or a write that bypassed us)."""
    entries: list[tuple[str, datetime]] = []
    count = 0
    with store_errors("rebuild days"):
        for doc in repository.collection.find({}, {"owner": 1, "created_at": 1}):
            owner = doc.get("owner")
            if not owner or owner.startswith(OWNER_DELETED) or "created_at" not in doc:
                continue
            entries.append((owner, doc["created_at"]))
            if len(entries) >= batch:
                record_days(repository.days, entries)
                count += len(entries)
                entries = []
        record_days(repository.days, entries)
    logger.info("Rebuilt day documents from %d interactions", count + len(entries))
    return count + len(entries)


def backfill_search_fields(
    repository: InteractionRepository, *, batch: int = 500, progress: Callable[[int], object] | None = None
) -> int:
    """Add ``owner``/``search_tokens``/``search_keys`` to documents written before they existed."""
    missing = {"search_keys": {"$exists": False}}
    done = 0
    with store_errors("backfill"):
        while True:
            docs = list(repository.collection.find(missing).limit(batch))
            if not docs:
                return done
            updates = []
            days: list[tuple[str, datetime]] = []
            for doc in docs:
                interaction = from_document({"created_at": OLDEST, **doc})
                fields = interaction.search_fields()
                fields["owner"] = doc.get("owner") or interaction.owner
                updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": fields}))
                days.append((fields["owner"], interaction.created_at))
            repository.collection.bulk_write(updates, ordered=False)
            record_days(repository.days, days)
            done += len(docs)
            if progress is not None:
                progress(len(docs))
