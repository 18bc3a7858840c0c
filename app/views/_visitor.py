"""Who is asking: every visitor gets a stable id kept in their session."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest

from app.domain.interaction import Scope
from app.middleware import bearer_scope

VISITOR_KEY = "visitor_id"


def visitor_id(request: HttpRequest) -> str:
    """The visitor's id, created on first use; it survives session key rotation (login)."""
    current = request.session.get(VISITOR_KEY)
    if not isinstance(current, str) or not current:
        current = uuid.uuid4().hex
        request.session[VISITOR_KEY] = current
    return current


def visitor_scope(request: HttpRequest) -> Scope:
    # An API client authenticated by a bearer token sees only the token's interactions (no session).
    token_scope = bearer_scope(request)
    if token_scope is not None:
        return token_scope
    # Logged in: the user's history on every device; HISTORY_SHARED: one history for the whole team.
    user = getattr(request, "user", None)
    user_id = str(user.pk) if user is not None and user.is_authenticated else None
    return Scope(session_id=visitor_id(request), user_id=user_id, shared=settings.HISTORY_SHARED)
