"""How an interaction is stored: the BSON document, the opaque page cursor, the id in a URL.

The only place that knows the document layout; the repository, the outbox and the benchmarks all
go through ``to_document``/``from_document`` so a record round-trips the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from app.domain.conversation import answered_thread, thread_digest
from app.domain.interaction import STATUS_OK, Interaction, parse_messages
from app.errors import INTERACTION_NOT_FOUND, InteractionNotFound, InvalidCursor

MAX_WINDOW_MS = 100 * 365 * 24 * 3600 * 1000


def to_document(interaction: Interaction) -> dict[str, Any]:
    return {
        "_id": ObjectId(interaction.id),
        "prompt": interaction.prompt,
        "output": interaction.output,
        "model": interaction.model,
        "task": interaction.task,
        "params": dict(interaction.params),
        "prompt_tokens": interaction.prompt_tokens,
        "output_tokens": interaction.output_tokens,
        "durations_ms": dict(interaction.durations_ms),
        "session_id": interaction.session_id,
        "created_at": interaction.created_at,
        "status": interaction.status,
        "error": interaction.error,
        "user_id": interaction.user_id,
        "owner": interaction.owner,
        "cached": interaction.cached,
        "cached_from": interaction.cached_from,
        "cache_key": interaction.cache_key,
        "regenerated_from": interaction.regenerated_from,
        "source": interaction.source,
        "api_key": interaction.api_key,
        "end_user": interaction.end_user,
        "messages": [dict(message) for message in interaction.messages] if interaction.messages is not None else None,
        "finish_reason": interaction.finish_reason,
        "heartbeat_at": interaction.heartbeat_at,
        "checkpoint": interaction.checkpoint,
        "stop_requested_at": interaction.stop_requested_at,
        "worker": interaction.worker,
        "conversation_id": interaction.conversation_id,
        "parent_id": interaction.parent_id,
        "turns_dropped": interaction.turns_dropped,
        "thread_hash": _thread_hash(interaction),
        "starred": interaction.starred,
        "tags": list(interaction.tags),
        "comparison_id": interaction.comparison_id,
        **interaction.search_fields(),
    }


def _thread_hash(interaction: Interaction) -> str | None:
    """The fingerprint of a finished /v1 conversation with its answer: a later call that extends it finds it."""
    thread = answered_thread(interaction) if interaction.status == STATUS_OK else None
    return thread_digest(thread) if thread else None


def from_document(doc: dict[str, Any]) -> Interaction:
    return Interaction(
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
        source=_optional_text(doc.get("source")),
        api_key=_optional_text(doc.get("api_key")),
        end_user=_optional_text(doc.get("end_user")),
        messages=parse_messages(doc.get("messages")),
        finish_reason=_optional_text(doc.get("finish_reason")),
        heartbeat_at=_optional_datetime(doc.get("heartbeat_at")),
        checkpoint=doc["checkpoint"] if isinstance(doc.get("checkpoint"), int) else 0,
        stop_requested_at=_optional_datetime(doc.get("stop_requested_at")),
        worker=_optional_text(doc.get("worker")),
        conversation_id=_optional_text(doc.get("conversation_id")),
        parent_id=_optional_text(doc.get("parent_id")),
        turns_dropped=doc["turns_dropped"] if isinstance(doc.get("turns_dropped"), int) else 0,
        starred=doc.get("starred") is True,
        tags=[tag for tag in doc.get("tags") or () if isinstance(tag, str)],
        marks_rev=doc["marks_rev"] if isinstance(doc.get("marks_rev"), int) else 0,
        comparison_id=_optional_text(doc.get("comparison_id")),
    )


def _optional_datetime(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Position:
    """Where a keyset page ended: the last row's (created_at, _id)."""

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


def created_between(since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """The ``created_at`` condition of a date range (``since`` inclusive, ``until`` exclusive); {} for none."""
    condition: dict[str, Any] = {}
    if since is not None:
        condition["$gte"] = since
    if until is not None:
        condition["$lt"] = until
    return condition


def parse_interaction_id(interaction_id: str) -> ObjectId:
    if not ObjectId.is_valid(interaction_id):
        raise InteractionNotFound(INTERACTION_NOT_FOUND)
    return ObjectId(interaction_id)
