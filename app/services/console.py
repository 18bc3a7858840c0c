"""Where command-line text goes: ``sys.stdout`` or a management command's ``OutputWrapper``."""

from __future__ import annotations

from typing import Protocol


class TextOut(Protocol):
    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...
