"""Use cases that join the model and the store: answer a prompt and keep the record."""

from __future__ import annotations

import logging

from django.conf import settings

from app.domain.generation import GenerationParams
from app.domain.interaction import Interaction, Page, Scope
from app.errors import (
    PROMPT_EMPTY,
    PROMPT_TOO_LONG,
    InteractionNotFound,
    InvalidPrompt,
    StoreUnavailable,
)
from app.services.metrics import observe_interaction
from app.services.mongo_documents import to_document
from app.services.mongo_repo import get_repository
from app.services.outbox import OutboxError, get_outbox, get_worker

logger = logging.getLogger(__name__)


def clean_prompt(text: str) -> str:
    """The prompt as it will be sent to the model, or ``InvalidPrompt`` with the reason."""
    if not text.strip():
        raise InvalidPrompt(PROMPT_EMPTY)
    limit = settings.PROMPT_MAX_CHARS
    if len(text) > limit:
        raise InvalidPrompt(PROMPT_TOO_LONG.format(limit=limit))
    return text.strip()


def answer_prompt(
    *,
    prompt: str,
    params: GenerationParams,
    scope: Scope,
    model: str | None = None,
    regenerated_from: str | None = None,
) -> Interaction:
    """Generate an answer (or take it from the answer cache) and store the interaction.

    ``model`` is an offered model id (empty: the default). Raises ``ModelNotOffered``, ``InvalidParams``,
    ``RateLimited``/``QueueFull`` (429) or ``ModelUnavailable`` (stored as a failed interaction first).
    The rules live in ``app.services.generation`` (shared with the streaming page).
    """
    from app.services.generation import Ask, answer_blocking

    ask = Ask(prompt=prompt, params=params, model=model or None, regenerated_from=regenerated_from)
    return answer_blocking(ask, scope)


def store_interaction(interaction: Interaction) -> None:
    """The one way an interaction is written: every caller (form, API, stream) goes through here.

    The interaction is first committed to the durable local outbox (fsync'd), then written to
    MongoDB. When MongoDB is unreachable, or older interactions are still waiting, it stays in the
    outbox for the replay worker and this returns normally: the visitor still gets the answer.
    Only when the outbox itself cannot be written *and* MongoDB fails is ``StoreUnavailable`` raised.
    """
    observe_interaction(interaction)
    outbox = get_outbox()
    try:
        seq = outbox.add(interaction)
    except OutboxError:
        logger.error("Outbox unavailable; writing interaction %s straight to MongoDB", interaction.id)
        get_repository().insert(interaction)
        return
    try:
        if outbox.has_pending_before(seq):  # keep the order: queue behind the older ones
            get_worker().wake()
            return
        get_repository().insert(interaction)
    except StoreUnavailable:
        logger.warning("MongoDB unreachable: interaction %s kept in the outbox for replay", interaction.id)
        get_worker().wake()
        return
    except OutboxError:
        get_worker().wake()
        return
    try:
        outbox.remove(interaction.id)
    except OutboxError:
        logger.warning(
            "Interaction %s is stored but still listed in the outbox (a replay finds it stored)", interaction.id
        )


def recent_interactions(*, scope: Scope, limit: int) -> Page:
    return get_repository().page(scope=scope, limit=limit)


def get_interaction(*, scope: Scope, interaction_id: str) -> Interaction:
    """One of the visitor's interactions; one still waiting in the outbox is found there too."""
    try:
        return get_repository().get(interaction_id, scope=scope)
    except (StoreUnavailable, InteractionNotFound):
        queued = queued_interaction(scope=scope, interaction_id=interaction_id)
        if queued is None:
            raise
        return queued


def queued_interaction(*, scope: Scope, interaction_id: str) -> Interaction | None:
    """The interaction if it waits in the outbox *and* belongs to ``scope`` (same rule as MongoDB)."""
    try:
        queued = get_outbox().find(interaction_id)
    except OutboxError:
        return None
    if queued is None:
        return None
    document = to_document(queued)
    for key, expected in scope.query().items():
        if isinstance(expected, dict) or key.startswith("$") or document.get(key) != expected:
            return None
    return queued
