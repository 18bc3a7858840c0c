"""Conversations as trees of records: the thread from the first turn to a leaf, and its branches.

A conversation is every record sharing a ``conversation_id`` (plus its first turn, which may predate the
field). Each turn names the turn it follows (``parent_id``); turns with the same parent are siblings,
the branches a visitor switches between (an edited prompt, a regenerated answer). A ``parent_id`` that
points at nothing (an import of part of a thread) makes that turn a root of its own branch. Pure
functions only: the store reads are in ``app/services/mongo_conversations.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.domain.generation import ChatTurn
from app.domain.ids import is_interaction_id
from app.domain.interaction import Interaction

MAX_TURNS = 200  # a follow-up deeper than this is refused (422): nothing is stored
MAX_CONVERSATION_RECORDS = 2000  # records read for one conversation page (every branch together)
THREAD_FIELDS = ("conversation_id", "parent_id")  # what an export row carries of its thread
THREAD_IDS_INVALID = "conversation_id and parent_id must each be a 24-character hexadecimal id or null"


@dataclass(frozen=True)
class Turn:
    """One turn of the shown thread, and where it sits among its siblings (1-based ``position``)."""

    interaction: Interaction
    siblings: tuple[str, ...]

    @property
    def position(self) -> int:
        return self.siblings.index(self.interaction.id) + 1

    @property
    def previous_id(self) -> str | None:
        index = self.position - 1
        return self.siblings[index - 1] if index > 0 else None

    @property
    def next_id(self) -> str | None:
        index = self.position - 1
        return self.siblings[index + 1] if index + 1 < len(self.siblings) else None

    @property
    def branched(self) -> bool:
        return len(self.siblings) > 1


@dataclass(frozen=True)
class Thread:
    """The conversation page: the turns from the root to a leaf, through the selected one."""

    conversation_id: str
    turns: tuple[Turn, ...]
    selected_id: str
    records: int

    @property
    def leaf(self) -> Interaction:
        return self.turns[-1].interaction


def _order(record: Interaction) -> tuple[object, str]:
    return (record.created_at, record.id)


def ancestors(by_id: Mapping[str, Interaction], leaf_id: str, *, limit: int | None = None) -> list[Interaction]:
    """The chain from the first reachable turn to ``leaf_id`` (inclusive), oldest first.

    Stops at a parent that is not in ``by_id`` (a dangling branch root), at a loop, and after ``limit``
    records (the caller then knows the chain is at least that deep).
    """
    chain: list[Interaction] = []
    seen: set[str] = set()
    current = by_id.get(leaf_id)
    while current is not None and current.id not in seen:
        chain.append(current)
        seen.add(current.id)
        if limit is not None and len(chain) >= limit:
            break
        current = by_id.get(current.parent_id) if current.parent_id else None
    chain.reverse()
    return chain


def _children(records: Iterable[Interaction], by_id: Mapping[str, Interaction]) -> dict[str | None, list[str]]:
    """Child ids by parent id, oldest first; the roots (no parent, or a parent not here) under ``None``."""
    groups: dict[str | None, list[Interaction]] = {}
    for record in records:
        parent = record.parent_id if record.parent_id in by_id and record.parent_id != record.id else None
        groups.setdefault(parent, []).append(record)
    return {parent: [item.id for item in sorted(items, key=_order)] for parent, items in groups.items()}


def build_thread(records: Sequence[Interaction], *, conversation_id: str, at: str | None = None) -> Thread | None:
    """The thread through ``at`` (default: the newest turn): its ancestors, then the newest child each step.

    ``None`` when there are no records or ``at`` is not one of them.
    """
    by_id = {record.id: record for record in records}
    if not by_id or (at is not None and at not in by_id):
        return None
    selected = at if at is not None else max(records, key=_order).id
    children = _children(by_id.values(), by_id)
    path = ancestors(by_id, selected)
    seen = {record.id for record in path}
    while True:
        below = [child for child in children.get(path[-1].id, []) if child not in seen]
        if not below:
            break
        newest = max((by_id[child] for child in below), key=_order)
        path.append(newest)
        seen.add(newest.id)
    turns = []
    for record in path:
        parent = record.parent_id if record.parent_id in by_id and record.parent_id != record.id else None
        siblings = tuple(children.get(parent, [record.id]))
        turns.append(Turn(interaction=record, siblings=siblings if record.id in siblings else (record.id,)))
    return Thread(conversation_id=conversation_id, turns=tuple(turns), selected_id=selected, records=len(by_id))


def history_turns(chain: Sequence[Interaction]) -> list[ChatTurn]:
    """Earlier turns as chat messages: each record's prompt (user) and its answer (assistant)."""
    turns: list[ChatTurn] = []
    for record in chain:
        turns.append(ChatTurn(role="user", content=record.prompt))
        turns.append(ChatTurn(role="assistant", content=record.output))
    return turns


def thread_digest(messages: Sequence[Mapping[str, str]]) -> str:
    """A short fingerprint of a whole conversation (role and text of every message, in order)."""
    material = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def answered_thread(record: Interaction) -> list[dict[str, str]] | None:
    """A /v1 record's conversation with its own answer as the last (assistant) message; None otherwise."""
    if not record.messages:
        return None
    return [*record.messages, {"role": "assistant", "content": record.output}]


def parse_thread_ids(record: Mapping[str, object]) -> tuple[str | None, str | None]:
    """``conversation_id`` and ``parent_id`` of an imported line (each absent, null or an id); ValueError."""
    values: list[str | None] = []
    for name in ("conversation_id", "parent_id"):
        value = record.get(name)
        if value is None:
            values.append(None)
        elif isinstance(value, str) and is_interaction_id(value.lower()):
            values.append(value.lower())
        else:
            raise ValueError(THREAD_IDS_INVALID)
    return values[0], values[1]
