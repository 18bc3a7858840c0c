"""Text the store can keep: every prompt, message and imported field passes through here.

MongoDB stores strings as UTF-8 and refuses NUL in keys; Python strings can hold lone surrogates
(``"\\ud800"`` decoded from JSON) and NUL characters that cannot be encoded or stored as sent. Such text
is refused with one clear message before it reaches a model or the store, instead of failing later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.errors import PROMPT_UNSTORABLE, InvalidPrompt

# NUL and the UTF-16 surrogate range (a surrogate alone is not a character and has no UTF-8 form).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 64


def is_storable(text: str) -> bool:
    """True when ``text`` encodes to UTF-8 and holds no NUL."""
    return _UNSTORABLE.search(text) is None


def holds_unstorable_text(value: object, *, depth: int = 0) -> bool:
    """Whether any string in a decoded JSON value (keys included) is not storable."""
    if isinstance(value, str):
        return not is_storable(value)
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, Mapping):
        return any(
            holds_unstorable_text(key, depth=depth + 1) or holds_unstorable_text(item, depth=depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return any(holds_unstorable_text(item, depth=depth + 1) for item in value)
    return False


def check_storable(text: str) -> str:
    """``text`` unchanged, or ``InvalidPrompt`` (422) with ``PROMPT_UNSTORABLE``."""
    if not is_storable(text):
        raise InvalidPrompt(PROMPT_UNSTORABLE)
    return text
