"""What happens after interactions are stored, for search (a leaf: imports nothing of the app).

The repository calls ``stored(ids)`` after every insert; listeners (the embedding queue of
``app.services.search.indexer``, registered when that module is imported) must be quick and never
raise: they only queue work for a background thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

Listener = Callable[[Sequence[str]], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def stored(ids: Sequence[str]) -> None:
    """Tell the listeners that these interaction ids were just written."""
    for listener in list(_listeners):
        try:
            listener(ids)
        except Exception:  # a search side task must never fail the write that triggered it
            logger.exception("Search listener %r failed for %s ids", listener, len(ids))
