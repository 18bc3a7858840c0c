"""One stored interaction (prompt, answer, how it was made) and whose it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.ids import new_interaction_id, utc_now
from app.domain.marks import with_marks
from app.domain.search import document_keys, document_tokens

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_CANCELLED = "cancelled"
# A durable generation (app/services/generation.py): written ``pending`` before the engine starts,
# checkpointed while it runs, then one terminal status; a pending record whose process died is
# marked ``interrupted`` by the reaper (app/services/reaper.py), keeping its partial text.
STATUS_PENDING = "pending"
STATUS_INTERRUPTED = "interrupted"
TERMINAL_STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_CANCELLED, STATUS_INTERRUPTED)
STATUSES = (*TERMINAL_STATUSES, STATUS_PENDING)
OWNER_SESSION = "s:"
OWNER_USER = "u:"
OWNER_DELETED = "x:"


def owner_key(*, session_id: str, user_id: str | None = None) -> str:
    """The one indexed field that says whose an interaction is: the user when logged in, else the visitor."""
    return f"{OWNER_USER}{user_id}" if user_id else f"{OWNER_SESSION}{session_id}"


@dataclass(frozen=True)
class Scope:
    """Whose interactions a query may see: this visitor, this logged-in user, or everyone (shared)."""

    session_id: str
    user_id: str | None = None
    shared: bool = False

    @property
    def owner(self) -> str:
        return owner_key(session_id=self.session_id, user_id=self.user_id)

    def query(self) -> dict[str, Any]:
        return {} if self.shared else {"owner": self.owner}

    def owner_fields(self) -> dict[str, Any]:
        """What a new interaction made in this scope carries (``Interaction(**scope.owner_fields(), …)``)."""
        return {"session_id": self.session_id, "user_id": self.user_id}


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
    user_id: str | None = None
    # Answered from the answer cache, its key, and the record it regenerates.
    cached: bool = False
    cached_from: str | None = None
    cache_key: str | None = None
    regenerated_from: str | None = None
    # Calls through the OpenAI-compatible API: where the call came from ("api"), the name of the key it
    # used, the end user the client named, the whole conversation, and why generation ended. None on
    # page prompts (finish_reason aside) and on records written before these fields existed.
    source: str | None = None
    api_key: str | None = None
    end_user: str | None = None
    messages: list[dict[str, str]] | None = None
    finish_reason: str | None = None
    # The generation as a durable record (None on records written before it existed): when the
    # generating process last wrote (``heartbeat_at``), how many checkpoints it wrote (+1 each, so a
    # follower sees a change), when a Stop was asked from any process, and which process
    # ("<hostname>:<pid>") generates.
    heartbeat_at: datetime | None = None
    checkpoint: int = 0
    stop_requested_at: datetime | None = None
    worker: str | None = None
    # Conversations (app/services/conversations.py): the thread a record belongs to (the id of its first
    # turn) and the turn it follows. A record without ``conversation_id`` (written before threads
    # existed) is its own one-turn conversation; a sibling (edit & resend, regenerate) shares the
    # parent. ``turns_dropped``: earlier turns left out to fit the model's context.
    conversation_id: str | None = None
    parent_id: str | None = None
    turns_dropped: int = 0

    @property
    def thread_id(self) -> str:
        """The conversation this record belongs to (its own id for a one-turn conversation)."""
        return self.conversation_id or self.id

    # The visitor's marks (app/domain/marks.py): a star, normalised tags, and how many times they were
    # changed (``marks_rev``, the compare-and-set counter of app/services/mongo_marks.py; 0: never).
    starred: bool = False
    tags: list[str] = field(default_factory=list)
    marks_rev: int = 0
    # One prompt sent to several models at once (``/compare/``): every answer of it has the same id.
    comparison_id: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == STATUS_PENDING

    @property
    def retryable(self) -> bool:
        """An answer cut by a dead process: the page and history offer Retry."""
        return self.status == STATUS_INTERRUPTED

    @property
    def owner(self) -> str:
        return owner_key(session_id=self.session_id, user_id=self.user_id)

    def search_fields(self) -> dict[str, Any]:
        """``search_tokens`` and ``search_keys`` (app/domain/search.py), written with every document."""
        tokens = document_tokens(self.prompt, self.output)
        return {
            "search_tokens": tokens,
            "search_keys": with_marks(
                document_keys(tokens, model=self.model, task=self.task, status=self.status),
                tags=self.tags,
                starred=self.starred,
            ),
        }


@dataclass(frozen=True)
class Page:
    """One page of a listing and the opaque cursor of the next one (``None``: this was the last)."""

    items: list[Interaction]
    next_cursor: str | None


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    duplicates: list[str]


def parse_messages(value: object) -> list[dict[str, str]] | None:
    """A stored conversation as ``[{"role", "content"}]``; anything malformed (or absent) is None."""
    if not isinstance(value, list):
        return None
    messages = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("role"), str)
            or not isinstance(item.get("content"), str)
        ):
            return None
        messages.append({"role": item["role"], "content": item["content"]})
    return messages
