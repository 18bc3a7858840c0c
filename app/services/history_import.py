"""Importing a history file: JSON Lines validated one by one, inserted in batches, every rejection said."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from app.domain.conversation import parse_thread_ids
from app.domain.interaction import (
    STATUS_INTERRUPTED,
    STATUS_OK,
    STATUS_PENDING,
    TERMINAL_STATUSES,
    Interaction,
    Scope,
    parse_messages,
)
from app.domain.marks import marks_from_record
from app.domain.text import holds_unstorable_text
from app.errors import InvalidTags
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)

IMPORT_STATUSES: tuple[str, ...] = TERMINAL_STATUSES  # a pending record is only ever made by a generation
IMPORT_BATCH = 500
IMPORT_MAX_LINE_BYTES = 1_000_000
IMPORT_MAX_TEXT_CHARS = 200_000
MAX_REJECTIONS_LISTED = 200
REJECT_NOT_JSON = "not valid JSON"
REJECT_NOT_OBJECT = "not a JSON object"
REJECT_TOO_LONG = f"line longer than {IMPORT_MAX_LINE_BYTES} bytes"
REJECT_NOT_UTF8 = "not UTF-8 text"
REJECT_ID = "id must be a 24-character hexadecimal id"
REJECT_PROMPT = "prompt must be non-empty text"
REJECT_TEXT_TOO_LONG = f"prompt and output must each be at most {IMPORT_MAX_TEXT_CHARS} characters"
REJECT_OUTPUT = "output must be text"
REJECT_CREATED_AT = "created_at must be an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z"
REJECT_TEXT_FIELD = "{name} must be text"
REJECT_STATUS = f"status must be one of {', '.join(IMPORT_STATUSES)}"
REJECT_PARAMS = "params must be a JSON object"
REJECT_TOKENS = 'tokens must be an object like {"prompt": 3, "output": 12} with whole numbers'
REJECT_TIMINGS = "timings_ms must be an object of numbers"
REJECT_MESSAGES = 'messages must be a list of {"role": text, "content": text} objects'
REJECT_UNSTORABLE = "text holds a NUL character or an unpaired surrogate (such as \\ud800), which cannot be stored"
REJECT_DUPLICATE_IN_FILE = "the same id appears earlier in this file"


# --- import -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: str


@dataclass
class ImportReport:
    lines: int = 0
    inserted: int = 0
    already_present: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTIONS_LISTED:
            self.rejected.append(RejectedLine(line=line, reason=reason))

    @property
    def accepted(self) -> int:
        return self.inserted + self.already_present


class InvalidRecord(ValueError):
    """One import line that cannot become an interaction; the message says why."""


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidRecord(REJECT_CREATED_AT)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRecord(REJECT_CREATED_AT) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _text(record: dict[str, Any], name: str, *, default: str = "") -> str:
    value = record.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidRecord(REJECT_TEXT_FIELD.format(name=name))
    return value


def _whole_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRecord(REJECT_TOKENS)
    return value


def record_to_interaction(record: object, *, scope: Scope) -> Interaction:
    """Validate one decoded import line; the interaction belongs to the importing ``scope``."""
    if not isinstance(record, dict):
        raise InvalidRecord(REJECT_NOT_OBJECT)
    if holds_unstorable_text(record):
        raise InvalidRecord(REJECT_UNSTORABLE)
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRecord(REJECT_PROMPT)
    output = record.get("output", "")
    if not isinstance(output, str):
        raise InvalidRecord(REJECT_OUTPUT)
    if len(prompt) > IMPORT_MAX_TEXT_CHARS or len(output) > IMPORT_MAX_TEXT_CHARS:
        raise InvalidRecord(REJECT_TEXT_TOO_LONG)
    created_at = _parse_time(record.get("created_at"))
    status = record.get("status", STATUS_OK) or STATUS_OK
    if status == STATUS_PENDING:  # exported while generating: nobody will finish it here
        status = STATUS_INTERRUPTED
    if status not in IMPORT_STATUSES:
        raise InvalidRecord(REJECT_STATUS)
    params = record.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidRecord(REJECT_PARAMS)
    tokens = record.get("tokens") or {}
    if not isinstance(tokens, dict):
        raise InvalidRecord(REJECT_TOKENS)
    timings = record.get("timings_ms") or {}
    if not isinstance(timings, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in timings.values()
    ):
        raise InvalidRecord(REJECT_TIMINGS)
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        raise InvalidRecord(REJECT_TEXT_FIELD.format(name="error"))
    model = _text(record, "model")
    task = _text(record, "task")
    messages = record.get("messages")
    if messages is not None and parse_messages(messages) is None:
        raise InvalidRecord(REJECT_MESSAGES)
    try:
        conversation_id, parent_id = parse_thread_ids(record)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None
    try:
        starred, tags = marks_from_record(record)
    except InvalidTags as exc:
        raise InvalidRecord(exc.message) from None
    return Interaction(
        id=_record_id(record, created_at=created_at, prompt=prompt, output=output),
        prompt=prompt,
        output=output,
        model=model,
        task=task,
        params=params,
        prompt_tokens=_whole_number(tokens.get("prompt", 0)),
        output_tokens=_whole_number(tokens.get("output", 0)),
        durations_ms={str(k): float(v) for k, v in timings.items()},
        status=status,
        error=error,
        created_at=created_at,
        **scope.owner_fields(),
        source=_text(record, "source") or None,
        api_key=_text(record, "api_key") or None,
        messages=parse_messages(messages),
        conversation_id=conversation_id,
        parent_id=parent_id,
        starred=starred,
        tags=tags,
    )


def _record_id(record: dict[str, Any], *, created_at: datetime, prompt: str, output: str) -> str:
    """The record's own id, or one derived from its content so a re-import is still a no-op."""
    value = record.get("id")
    if value is None:
        digest = hashlib.sha256(f"{created_at.isoformat()}\0{prompt}\0{output}".encode()).digest()
        return str(ObjectId(digest[:12]))
    if not isinstance(value, str) or not ObjectId.is_valid(value) or len(value) != 24:
        raise InvalidRecord(REJECT_ID)
    return value.lower()


def parse_line(raw: bytes | str, *, scope: Scope) -> Interaction | None:
    """One line of a JSON Lines file; ``None`` for a blank line, ``InvalidRecord`` when it is bad."""
    if isinstance(raw, bytes):
        if len(raw) > IMPORT_MAX_LINE_BYTES:
            raise InvalidRecord(REJECT_TOO_LONG)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidRecord(REJECT_NOT_UTF8) from None
    else:
        text = raw
        if len(text.encode("utf-8")) > IMPORT_MAX_LINE_BYTES:
            raise InvalidRecord(REJECT_TOO_LONG)
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidRecord(REJECT_NOT_JSON) from None
    return record_to_interaction(record, scope=scope)


def import_jsonl(
    lines: Iterable[bytes | str],
    *,
    scope: Scope,
    batch_size: int = IMPORT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate line by line and insert in batches; an id already stored is counted, not duplicated."""
    report = ImportReport()
    batch: list[Interaction] = []
    seen: set[str] = set()
    repository = get_repository()

    def flush() -> None:
        if not batch:
            return
        result = repository.import_batch(batch)
        report.inserted += result.inserted
        report.already_present += len(result.duplicates)
        batch.clear()

    for number, raw in enumerate(lines, start=1):
        report.lines = number
        try:
            interaction = parse_line(raw, scope=scope)
        except InvalidRecord as exc:
            report.reject(number, str(exc))
            continue
        if interaction is None:
            continue
        if interaction.id in seen:
            report.reject(number, REJECT_DUPLICATE_IN_FILE)
            continue
        seen.add(interaction.id)
        batch.append(interaction)
        if len(batch) >= batch_size:
            flush()
            if progress is not None:
                progress(number)
    flush()
    if progress is not None:
        progress(report.lines)
    logger.info(
        "Import: %s lines, %s inserted, %s already present, %s rejected",
        report.lines,
        report.inserted,
        report.already_present,
        report.rejected_count,
    )
    return report
