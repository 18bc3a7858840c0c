"""History use cases: browse and search pages, export, import, delete and restore, claim after login.

Every function takes the caller's ``Scope``; the repository puts it into each query, so another
visitor's interaction is simply not found (404 everywhere).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.domain.conversation import THREAD_FIELDS
from app.domain.filters import HistoryFilter
from app.domain.interaction import STATUSES as RECORD_STATUSES
from app.domain.interaction import (
    Interaction,
    Scope,
)
from app.domain.search import Segment, highlight
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = RECORD_STATUSES  # the history filter offers every status
PAGE_SIZE = 20
CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "model",
    "task",
    "status",
    "prompt",
    "output",
    "prompt_tokens",
    "output_tokens",
    "error",
    *THREAD_FIELDS,
    "starred",
    "tags",
)
# Spreadsheets run cells that start with these as formulas; exported text gets a leading quote.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class HistoryRow:
    interaction: Interaction
    prompt: list[Segment]
    output: list[Segment]


@dataclass(frozen=True)
class HistoryPage:
    rows: list[HistoryRow]
    next_cursor: str | None


def history_page(*, scope: Scope, filters: HistoryFilter, cursor: str | None, limit: int = PAGE_SIZE) -> HistoryPage:
    """One page, newest first, with the matched words marked in short snippets."""
    page = get_repository().page(scope=scope, cursor=cursor, limit=limit, filters=filters)
    rows = [
        HistoryRow(
            interaction=item,
            prompt=highlight(item.prompt, filters.search, width=120),
            output=highlight(item.output, filters.search),
        )
        for item in page.items
    ]
    return HistoryPage(rows=rows, next_cursor=page.next_cursor)


def delete_interaction(*, scope: Scope, interaction_id: str) -> Interaction:
    return get_repository().soft_delete(interaction_id, scope=scope)


def restore_interaction(*, scope: Scope, interaction_id: str) -> Interaction:
    return get_repository().restore(interaction_id, scope=scope)


def delete_history(*, scope: Scope) -> int:
    return get_repository().delete_all(scope=scope)


def claim_history(*, session_id: str, user_id: str) -> int:
    return get_repository().claim(session_id=session_id, user_id=user_id)


def has_unclaimed_history(*, session_id: str) -> bool:
    return get_repository().count_claimable(session_id=session_id)


# --- export -------------------------------------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export_record(interaction: Interaction) -> dict[str, Any]:
    """The exported (and importable) form of one interaction (plus where it came from, for /v1 calls)."""
    record: dict[str, Any] = {
        "id": interaction.id,
        "created_at": _iso(interaction.created_at),
        "prompt": interaction.prompt,
        "output": interaction.output,
        "model": interaction.model,
        "task": interaction.task,
        "status": interaction.status,
        "error": interaction.error,
        "params": interaction.params,
        "tokens": {"prompt": interaction.prompt_tokens, "output": interaction.output_tokens},
        "timings_ms": interaction.durations_ms,
        **{name: getattr(interaction, name) for name in THREAD_FIELDS},
        "starred": interaction.starred,
        "tags": list(interaction.tags),
    }
    if interaction.source is not None:
        record.update(source=interaction.source, api_key=interaction.api_key, messages=interaction.messages)
    return record


def _matching(scope: Scope, filters: HistoryFilter) -> Iterator[Interaction]:
    return get_repository().iter_interactions(scope=scope, filters=filters)


def export_jsonl(*, scope: Scope, filters: HistoryFilter) -> Iterator[str]:
    """One JSON object per line, newest first, read from the store window by window."""
    for interaction in _matching(scope, filters):
        yield json.dumps(export_record(interaction), ensure_ascii=False) + "\n"


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(*, scope: Scope, filters: HistoryFilter) -> Iterator[str]:
    """A header line, then one CSV row per interaction (formula-looking text is neutralized)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for interaction in _matching(scope, filters):
        record = export_record(interaction)
        record["prompt_tokens"] = interaction.prompt_tokens
        record["output_tokens"] = interaction.output_tokens
        record["tags"] = " ".join(interaction.tags)
        writer.writerow([_csv_cell(record[name]) for name in CSV_COLUMNS])
        yield flush()
