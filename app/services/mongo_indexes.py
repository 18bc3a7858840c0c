"""The indexes every query of the app rides on: one declarative list, ensured at start-up (``ensure_indexes``)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

# How long a deleted interaction can still be restored (the undo) before the TTL index purges it.
DELETED_RETENTION_SECONDS = 120

DAY_INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("owner", ASCENDING), ("day", DESCENDING)], name="owner_day_desc"),
    IndexModel([("day", DESCENDING)], name="day_desc"),
)

# The shared per-visitor rate limit (app/services/rate_limit.py): one small document per visitor, removed
# by the server once that visitor's allowance is full again (the document then means nothing).
RATE_SUFFIX = "_rate"
RATE_INDEXES: tuple[IndexModel, ...] = (IndexModel([("expires_at", ASCENDING)], name="rate_ttl", expireAfterSeconds=0),)

# Prompt templates (app/services/mongo_templates.py): one document per template, a name once per owner.
TEMPLATES_SUFFIX = "_templates"
TEMPLATE_INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("owner", ASCENDING), ("name", ASCENDING)], name="owner_name_unique", unique=True),
)

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
    # Semantic search (app/services/search/vectors.py): what was embedded since an owner's index was read.
    IndexModel([("owner", ASCENDING), ("embedded_at", ASCENDING)], name="owner_embedded_at"),
    # Conversations (app/services/mongo_conversations.py): every turn of one thread, and the /v1 record a
    # later call extends (its conversation's fingerprint); both equality lookups within one owner.
    IndexModel([("owner", ASCENDING), ("conversation_id", ASCENDING)], name="owner_conversation"),
    IndexModel([("owner", ASCENDING), ("thread_hash", ASCENDING)], name="owner_thread_hash"),
    # The reaper (app/services/reaper.py): pending generations whose heartbeat is old.
    IndexModel([("status", ASCENDING), ("heartbeat_at", ASCENDING)], name="status_heartbeat"),
    # Comparisons (app/services/comparisons.py): the answers of one comparison, by owner.
    IndexModel([("owner", ASCENDING), ("comparison_id", ASCENDING)], name="owner_comparison"),
)
