"""Conversations: follow-ups that carry the earlier turns, branches, the conversation page, /v1 threads.

* ``thread_ask`` turns a page prompt into the next turn of a conversation: ``parent_id`` (a follow-up:
  the new turn comes after that answer) or ``sibling_of`` (edit & resend, regenerate: a new branch beside
  that turn, after the same parent). The model gets the ancestor chain, root first, as user/assistant
  turns plus the new prompt (the chat template of a causal model, joined turns for seq2seq, chat
  messages for servers); when they would not fit its context (``context_window``), the oldest turns
  are left out and the record says how many (``turns_dropped``).
* ``conversation_thread`` is the conversation page: the thread through one turn, with its branches.
* ``api_thread`` links a /v1 call whose ``messages`` extend an earlier /v1 record of the same key
  (that record's messages + its answer, then more) to that record's conversation.

Nothing here writes: a refused follow-up (another visitor's turn, a malformed or unknown id, a thread too
deep) changes nothing stored. Another visitor's turn is "not found", as everywhere.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from app.domain.conversation import (
    MAX_CONVERSATION_RECORDS,
    MAX_TURNS,
    Thread,
    ancestors,
    build_thread,
    history_turns,
    thread_digest,
)
from app.domain.generation import Ask, ChatTurn
from app.domain.ids import is_interaction_id
from app.domain.interaction import Interaction, Scope
from app.errors import (
    CONVERSATION_TOO_LONG,
    FOLLOW_UP_NOT_FOUND,
    FOLLOW_UP_NOT_READY,
    ConversationNotFound,
    DomainError,
    InteractionNotFound,
    InvalidFollowUp,
)
from app.services.context_window import fit, meter_for
from app.services.interactions import get_interaction
from app.services.model_registry import service_for
from app.services.mongo_conversations import conversation_records, find_thread_end, turn_counts
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)


def thread_ask(ask: Ask, scope: Scope, *, parent_id: str = "", sibling_of: str = "") -> Ask:
    """``ask`` as the next turn after ``parent_id``, or as a new branch beside ``sibling_of`` (neither: as is)."""
    if sibling_of:
        turn = _turn(scope, sibling_of)
        parent = _maybe_turn(scope, turn.parent_id)
        if parent is None:  # a first turn (or one whose parent is gone): a new first turn of the same thread
            return dataclasses.replace(ask, conversation_id=turn.thread_id, parent_id=turn.parent_id)
        return _after(ask, scope, parent)
    if parent_id:
        return _after(ask, scope, _turn(scope, parent_id))
    return ask


def regenerate_ask(ask: Ask, scope: Scope, earlier: Interaction) -> Ask:
    """A regenerated answer is a sibling of the earlier one: same parent, same earlier turns."""
    if earlier.messages:  # a /v1 record carries its own conversation
        return ask
    return thread_ask(ask, scope, sibling_of=earlier.id)


def conversation_thread(*, scope: Scope, conversation_id: str, at: str | None = None) -> Thread:
    """The visitor's conversation through turn ``at`` (default: its newest turn); ``ConversationNotFound``."""
    if not is_interaction_id(conversation_id) or (at is not None and not is_interaction_id(at)):
        raise ConversationNotFound()
    records = conversation_records(get_repository(), scope=scope, conversation_id=conversation_id)
    thread = build_thread(records, conversation_id=conversation_id.lower(), at=at.lower() if at else None)
    if thread is None:
        raise ConversationNotFound()
    return thread


def page_turn_counts(*, scope: Scope, interactions: Iterable[Interaction]) -> dict[str, int]:
    """Turns per conversation of a page's rows, by conversation id (one query; {} if the store fails)."""
    try:
        return turn_counts(get_repository(), scope=scope, conversation_ids=[item.thread_id for item in interactions])
    except DomainError as exc:
        logger.warning("Turn counts unavailable: %s", exc.message)
        return {}


def api_thread(ask: Ask, scope: Scope) -> Ask:
    """A /v1 ask whose messages extend an earlier /v1 answer of this key continues that conversation."""
    messages = [turn.to_dict() for turn in ask.messages]
    if len(messages) < 3 or messages[-2]["role"] != "assistant":
        return ask
    try:
        earlier = find_thread_end(
            get_repository(), scope=scope, thread_hash=thread_digest(messages[:-1]), api_key=ask.api_key
        )
    except DomainError as exc:  # the store is away: the call is answered as a new conversation
        logger.warning("Could not look up the /v1 thread: %s", exc.message)
        return ask
    if earlier is None:
        return ask
    return dataclasses.replace(ask, conversation_id=earlier.thread_id, parent_id=earlier.id)


# --- internals ---------------------------------------------------------------------------------


def _turn(scope: Scope, interaction_id: str) -> Interaction:
    """One of the visitor's turns; an unknown, malformed or foreign id is a 404 saying what to do."""
    found = _maybe_turn(scope, interaction_id)
    if found is None:
        raise InteractionNotFound(FOLLOW_UP_NOT_FOUND)
    return found


def _maybe_turn(scope: Scope, interaction_id: str | None) -> Interaction | None:
    if not interaction_id or not is_interaction_id(interaction_id):
        return None
    try:
        return get_interaction(scope=scope, interaction_id=interaction_id)
    except InteractionNotFound:
        return None


def _after(ask: Ask, scope: Scope, parent: Interaction) -> Ask:
    if parent.pending:
        raise InvalidFollowUp(FOLLOW_UP_NOT_READY)
    chain = _chain(scope, parent)
    earlier = history_turns(chain)
    latest = ChatTurn(role="user", content=ask.prompt)
    dropped = fit(meter_for(service_for(ask.model)), earlier, latest, max_new_tokens=ask.params.max_new_tokens)
    if dropped:
        logger.info("Follow-up to %s: %d earlier turn(s) left out to fit the context", parent.id, dropped)
    return dataclasses.replace(
        ask,
        messages=(*earlier[dropped * 2 :], latest),
        conversation_id=parent.thread_id,
        parent_id=parent.id,
        turns_dropped=dropped,
        record_messages=False,
    )


def _chain(scope: Scope, parent: Interaction) -> list[Interaction]:
    """The turns from the first to ``parent``; a thread deeper than ``MAX_TURNS`` is refused (422)."""
    records = conversation_records(get_repository(), scope=scope, conversation_id=parent.thread_id)
    if len(records) >= MAX_CONVERSATION_RECORDS:
        raise InvalidFollowUp(CONVERSATION_TOO_LONG.format(limit=MAX_TURNS))
    by_id = {record.id: record for record in records}
    by_id[parent.id] = parent
    chain = ancestors(by_id, parent.id, limit=MAX_TURNS)
    if len(chain) >= MAX_TURNS:
        raise InvalidFollowUp(CONVERSATION_TOO_LONG.format(limit=MAX_TURNS))
    return chain
