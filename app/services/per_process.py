"""One object per process, built on first use (a lock with a double check), rebuilt when its settings change.

Clients and caches are never created at import time: a forked worker builds its own on first use,
and tests reset them. ``key`` names the settings an instance was built from; when it changes (tests
override settings), the next ``get()`` builds a fresh one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    def __init__(
        self,
        build: Callable[[], T],
        *,
        key: Callable[[], Hashable] = lambda: None,
        close: Callable[[T], object] | None = None,
    ) -> None:
        self._build = build
        self._key = key
        self._close = close
        self._lock = threading.Lock()
        self._built: tuple[Hashable, T] | None = None

    def get(self) -> T:
        key = self._key()
        built = self._built
        if built is not None and built[0] == key:
            return built[1]
        with self._lock:
            if self._built is None or self._built[0] != key:
                self._built = (key, self._build())
            return self._built[1]

    def replace(self, instance: T) -> None:
        """Use ``instance`` until the next ``reset()`` (tests that need an instrumented client)."""
        with self._lock:
            self._built = (self._key(), instance)

    def reset(self) -> None:
        """Forget the instance (closing it first when it has a ``close``); the next ``get()`` builds anew."""
        with self._lock:
            built, self._built = self._built, None
        if built is not None and self._close is not None:
            self._close(built[1])
