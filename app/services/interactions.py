"""Reading the visitor's interactions: from MongoDB, or from the outbox while one waits there."""

from __future__ import annotations

import logging

from app.domain.interaction import Interaction, Page, Scope
from app.errors import (
    InteractionNotFound,
    StoreUnavailable,
)
from app.services.mongo_documents import to_document
from app.services.mongo_repo import get_repository
from app.services.outbox import OutboxError, get_outbox

logger = logging.getLogger(__name__)


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
