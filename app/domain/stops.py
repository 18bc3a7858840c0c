"""Stop strings: an answer ends before the first one, and a stream never sends one (even split across deltas)."""

from __future__ import annotations

from collections.abc import Sequence


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` cut before the earliest stop string, and whether one was found."""
    found = [index for index in (text.find(stop) for stop in stops if stop) if index >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


def unsafe_tail(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string (hold them back)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class StopFilter:
    """Streams text deltas without ever sending a stop string or the text after it."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.text = ""
        self.sent = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """The part of the text so far that is now safe to send (``stopped`` turns True at a stop string)."""
        if self.stopped:
            return ""
        self.text += delta
        kept, self.stopped = truncate_at_stop(self.text, self.stops)
        if not self.stopped:
            kept = kept[: len(kept) - unsafe_tail(kept, self.stops)]
        return self._send(kept)

    def finish(self, final_text: str) -> str:
        """What is still to send once the answer is complete (``final_text`` is already cut at a stop)."""
        if not final_text.startswith(self.sent):
            return ""  # the final decoding differs from the streamed one: never resend or contradict
        return self._send(final_text)

    def _send(self, kept: str) -> str:
        if len(kept) <= len(self.sent):
            return ""
        piece, self.sent = kept[len(self.sent) :], kept
        return piece
