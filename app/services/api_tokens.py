"""Bearer tokens for the JSON APIs (``API_TOKENS``): which token is valid, and whose history it writes to."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from app.domain.interaction import Scope


def token_scope(token: str) -> Scope:
    """The scope of a bearer client: stable per token, reveals nothing about it."""
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return Scope(session_id=f"token:{digest}")


def match_token(presented: str) -> bool:
    """Constant-time comparison against every configured token."""
    found = False
    for configured in settings.API_TOKENS:
        found |= hmac.compare_digest(presented.encode("utf-8"), configured.encode("utf-8"))
    return found
