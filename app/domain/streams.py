"""What a client following a generation is told, event by event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal["queued", "started", "token", "done", "error"]


@dataclass(frozen=True)
class StreamEvent:
    """One thing a client is told about its request: queue position, a text delta, the end."""

    kind: EventKind
    position: int = 0
    text: str = ""
