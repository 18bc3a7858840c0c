"""API keys from ``API_TOKENS``: parsing, validation and constant-time matching.

Each comma-separated entry is ``[NAME[:USERNAME]@]TOKEN``:

* ``TOKEN`` — an unnamed key; its calls are kept in the key's own history (as before).
* ``NAME@TOKEN`` — a named key (``ci``, ``laptop``…); the name is recorded on every call it makes.
* ``NAME:USERNAME@TOKEN`` — a named key bound to a Django account: its calls land in that user's
  history, so they are visible in the browser after logging in.

The token is everything after the last ``@`` (so a USERNAME may itself contain ``@``); it must be
16+ characters without ``@`` or white space. A key's token never appears in a message, a ``repr``
or a log line: entries are named by their position or their NAME.

Imported by settings to validate ``API_TOKENS``; matching a presented token is ``app.services.api_tokens``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

MIN_TOKEN_LENGTH = 16
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
USERNAME_PATTERN = re.compile(r"[\w.@+-]{1,150}")
KEY_SYNTAX_HELP = (
    "Each entry is TOKEN, NAME@TOKEN or NAME:USERNAME@TOKEN (e.g. API_TOKENS=laptop:alice@<token>); "
    'generate a token with `python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
)
TOKEN_TOO_SHORT = (
    "{variable} has an entry shorter than 16 characters. Use long random tokens, e.g. "
    '`python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
)


@dataclass(frozen=True)
class ApiKey:
    """One configured key. ``token`` is left out of ``repr`` so it cannot leak into a log line."""

    token: str = field(repr=False)
    name: str | None = None
    username: str | None = None

    @property
    def digest(self) -> str:
        """The first 16 hex digits of sha256(token): a stable id that reveals nothing about the token."""
        return token_digest(self.token)

    @property
    def label(self) -> str:
        """How logs name this key: its NAME, or ``token:<8 hex digits>``."""
        return self.name or f"token:{self.digest[:8]}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def parse_api_key(variable: str, position: int, entry: str) -> ApiKey:
    """One ``[NAME[:USERNAME]@]TOKEN`` entry; ``ImproperlyConfigured`` names the entry by position only."""
    where = f"{variable} entry #{position}"
    head, separator, token = entry.strip().rpartition("@")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ImproperlyConfigured(TOKEN_TOO_SHORT.format(variable=variable))
    if any(character.isspace() for character in token):
        raise ImproperlyConfigured(f"{where}: the token must not contain white space. {KEY_SYNTAX_HELP}")
    if not separator:
        return ApiKey(token=token)
    name, colon, username = head.partition(":")
    if not NAME_PATTERN.fullmatch(name):
        raise ImproperlyConfigured(
            f"{where}: the key name before '@' must be 1-64 letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit). {KEY_SYNTAX_HELP}"
        )
    if colon and not USERNAME_PATTERN.fullmatch(username):
        raise ImproperlyConfigured(
            f"{where} (key {name!r}): the username after ':' must be a Django username "
            f"(letters, digits and @ . + - _). {KEY_SYNTAX_HELP}"
        )
    return ApiKey(token=token, name=name, username=username if colon else None)


def parse_api_keys(variable: str, entries: Sequence[str]) -> tuple[ApiKey, ...]:
    """Every entry, validated; names and tokens must be unique."""
    keys = tuple(parse_api_key(variable, position, entry) for position, entry in enumerate(entries, start=1))
    names = [key.name for key in keys if key.name]
    duplicate_names = sorted({name for name in names if names.count(name) > 1})
    if duplicate_names:
        raise ImproperlyConfigured(f"{variable}: the key name {duplicate_names[0]!r} is used more than once.")
    if len({key.token for key in keys}) != len(keys):
        raise ImproperlyConfigured(f"{variable}: the same token appears in more than one entry.")
    return keys
