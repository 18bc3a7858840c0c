"""A small text progress bar for management commands (one line, rewritten in place)."""

from __future__ import annotations

import time

from app.services.console import TextOut

BAR_WIDTH = 30


class ProgressBar:
    def __init__(self, *, total: int, label: str, out: TextOut, unit: str = "") -> None:
        self.total = max(total, 0)
        self.label = label
        self.out = out
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int) -> None:
        self.done = min(done, self.total) if self.total else done
        fraction = self.done / self.total if self.total else 1.0
        filled = int(BAR_WIDTH * fraction)
        elapsed = time.monotonic() - self.started
        self.out.write(
            f"\r{self.label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%} "
            f"{self.done}/{self.total}{self.unit} {elapsed:5.1f}s"
        )
        self.out.flush()

    def finish(self) -> None:
        self.update(self.total if self.total else self.done)
        self.out.write("\n")
        self.out.flush()
