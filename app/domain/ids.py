"""Record ids and timestamps, made without the database driver.

Ids are 24 hexadecimal characters laid out like a BSON ObjectId (4 bytes of seconds, 5 random bytes
per process, a 3-byte counter), so the repository can store them as ``ObjectId`` and they sort by
creation time; the record exists, with its id, before anything is written.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from datetime import UTC, datetime

_counter = itertools.count(secrets.randbelow(0xFFFFFF))
_lock = threading.Lock()
_process: tuple[int, bytes] = (os.getpid(), secrets.token_bytes(5))


def utc_now() -> datetime:
    """Now in UTC, truncated to the millisecond that BSON dates keep (so cursors round-trip)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_interaction_id() -> str:
    """A fresh ObjectId-shaped id (a forked child draws new random bytes, like PyMongo does)."""
    global _process
    with _lock:
        if _process[0] != os.getpid():
            _process = (os.getpid(), secrets.token_bytes(5))
        count = next(_counter) & 0xFFFFFF
        random_part = _process[1]
    return (int(time.time()).to_bytes(4, "big") + random_part + count.to_bytes(3, "big")).hex()


def is_interaction_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id (24 hexadecimal characters)."""
    return len(text) == 24 and all(char in "0123456789abcdefABCDEF" for char in text)
