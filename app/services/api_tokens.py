"""Bearer keys for the JSON APIs (``API_TOKENS``): which key a token is, and whose history it writes to.

The syntax (``TOKEN``, ``NAME@TOKEN``, ``NAME:USERNAME@TOKEN``) is parsed by ``django_hf_ml.api_keys``.
"""

from __future__ import annotations

import hmac
import logging
import threading

from django.conf import settings
from django.contrib.auth import get_user_model

from app.domain.interaction import Scope
from django_hf_ml.api_keys import ApiKey, parse_api_keys, token_digest

logger = logging.getLogger(__name__)

KEY_USER_MISSING = "This key is bound to an account that does not exist or is inactive."

_parsed: tuple[tuple[str, ...], tuple[ApiKey, ...]] | None = None
_parsed_lock = threading.Lock()


class KeyUserMissing(Exception):
    """A ``NAME:USERNAME@TOKEN`` key names an account that does not exist (or is inactive)."""


def configured_keys() -> tuple[ApiKey, ...]:
    """The keys of ``settings.API_TOKENS`` (parsed again only when the setting changes, e.g. in tests)."""
    global _parsed
    entries = tuple(settings.API_TOKENS)
    with _parsed_lock:
        if _parsed is None or _parsed[0] != entries:
            _parsed = (entries, parse_api_keys("API_TOKENS", entries))
        return _parsed[1]


def find_key(presented: str) -> ApiKey | None:
    """The configured key whose token equals ``presented``; every token is compared in constant time."""
    found: ApiKey | None = None
    candidate = presented.encode("utf-8")
    for key in configured_keys():
        if hmac.compare_digest(candidate, key.token.encode("utf-8")):
            found = key
    return found


def token_scope(token: str) -> Scope:
    """The scope of a bearer client: stable per token, reveals nothing about it."""
    return Scope(session_id=f"token:{token_digest(token)}")


def match_token(presented: str) -> bool:
    """Constant-time comparison against every configured token."""
    return find_key(presented) is not None


def key_scope(key: ApiKey) -> Scope:
    """Whose history a key's calls belong to: the key's own, or its bound user's (``KeyUserMissing``)."""
    scope = token_scope(key.token)
    if key.username is None:
        return scope
    users = get_user_model().objects.filter(username=key.username, is_active=True)
    user_pk = users.values_list("pk", flat=True).first()
    if user_pk is None:
        logger.warning("API key %r is bound to user %r, who does not exist or is inactive", key.label, key.username)
        raise KeyUserMissing(KEY_USER_MISSING)
    return Scope(session_id=scope.session_id, user_id=str(user_pk))
