"""Template context for the "history unavailable" banner (reads the local outbox, never MongoDB)."""

from __future__ import annotations

import logging

from django.http import HttpRequest

from app.services.outbox import OutboxError, get_outbox, get_worker

logger = logging.getLogger(__name__)


def outbox_status(request: HttpRequest) -> dict[str, int]:
    """``outbox_depth``: interactions waiting for MongoDB. A non-empty outbox also (re)starts the
    replay worker, so leftovers from an earlier run are written once the store answers."""
    try:
        depth = get_outbox().depth()
    except OutboxError:
        return {"outbox_depth": 0}
    if depth:
        get_worker().wake()
    return {"outbox_depth": depth}
