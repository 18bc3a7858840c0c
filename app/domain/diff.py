"""A word-level diff of two answers: pure text in, segments out (the template escapes and marks them).

The texts are cut into tokens that keep every character: a word with the whitespace after it, a run of
punctuation with the whitespace after it, or leading whitespace, so joining the tokens gives the text
back exactly (a changed line break shows as a change of the word before it). ``difflib.SequenceMatcher``
with ``autojunk=False`` (an answer's common words must not be ignored) matches the tokens.

Cost: answers are at most ~100 KB, and SequenceMatcher is quadratic at worst (measured: two unrelated
100 KB texts took over a minute in one piece). So the work is bounded in three steps: the common head
and tail are taken off first (most of the work when two answers mostly agree); the rest is matched
sentence by sentence (chunks ending at a line break or a sentence end, at most ``CHUNK_TOKENS``
tokens), which follows text that moved; and each pair of differing stretches is diffed word by word
in pieces of at most ``WORD_BUDGET`` token pairs, split by position when larger; a piece whose words
repeat beyond ``REPEAT_BUDGET`` equal pairs (a pathological answer) is shown as replaced as a whole.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["equal", "delete", "insert"]

TOKEN = re.compile(r"\s+|\w+\s*|[^\w\s]+\s*")
SENTENCE_END = re.compile(r"[.!?;:]+\s+$|\n")
CHUNK_TOKENS = 40
WORD_BUDGET = 160_000  # token pairs one word-level SequenceMatcher may look at (e.g. 400 × 400)
# Pairs of equal tokens in one such piece past which its words repeat so much (one word a thousand
# times) that matching them would be quadratic again: the piece is shown as replaced instead.
REPEAT_BUDGET = 20_000


@dataclass(frozen=True)
class DiffSegment:
    """A run of text that is in both answers (``equal``), only in the first (``delete``) or the second."""

    kind: SegmentKind
    text: str

    @property
    def equal(self) -> bool:
        return self.kind == "equal"


@dataclass(frozen=True)
class DiffResult:
    """The segments in reading order, and how much of the text both answers share."""

    segments: tuple[DiffSegment, ...]
    same_chars: int
    total_chars: int  # characters of both texts together

    @property
    def identical(self) -> bool:
        return all(segment.equal for segment in self.segments)

    @property
    def similarity(self) -> float:
        """Share of the characters that are the same, 0.0–1.0 (two empty texts are the same)."""
        return 1.0 if self.total_chars == 0 else 2 * self.same_chars / self.total_chars

    @property
    def percent_same(self) -> int:
        """``similarity`` as a whole percentage, rounded down: 100 only when the texts are equal."""
        return 100 if self.identical else min(int(self.similarity * 100), 99)

    def side(self, kind: Literal["delete", "insert"]) -> tuple[DiffSegment, ...]:
        """One side of a side-by-side view: the first text (``delete``) or the second (``insert``)."""
        return tuple(segment for segment in self.segments if segment.kind in ("equal", kind))


def tokenize(text: str) -> list[str]:
    """Words and punctuation runs with their trailing whitespace; ``"".join(tokenize(t)) == t``."""
    return TOKEN.findall(text)


def word_diff(first: str, second: str) -> DiffResult:
    """The diff that turns ``first`` into ``second``, word by word."""
    a, b = tokenize(first), tokenize(second)
    head = _common_prefix(a, b)
    tail = _common_prefix(a[head:][::-1], b[head:][::-1])
    segments: list[DiffSegment] = []
    _add(segments, "equal", "".join(a[:head]))
    _diff_chunks(segments, _chunks(a[head : len(a) - tail]), _chunks(b[head : len(b) - tail]))
    _add(segments, "equal", "".join(a[len(a) - tail :]))
    same = sum(len(segment.text) for segment in segments if segment.equal)
    return DiffResult(segments=tuple(segments), same_chars=same, total_chars=len(first) + len(second))


def _chunks(tokens: list[str]) -> list[tuple[str, ...]]:
    """Sentence-like runs of tokens: each ends at a line break, a sentence end or ``CHUNK_TOKENS`` tokens."""
    chunks: list[tuple[str, ...]] = []
    start = 0
    for index, token in enumerate(tokens):
        if SENTENCE_END.search(token) or index + 1 - start >= CHUNK_TOKENS:
            chunks.append(tuple(tokens[start : index + 1]))
            start = index + 1
    if start < len(tokens):
        chunks.append(tuple(tokens[start:]))
    return chunks


def _diff_chunks(segments: list[DiffSegment], a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> None:
    # Sentences repeat rarely in prose; autojunk only gives up on those that repeat very often, which
    # keeps a pathological answer (one sentence a thousand times) from costing n × m.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=True)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        left = [token for chunk in a[i1:i2] for token in chunk]
        right = [token for chunk in b[j1:j2] for token in chunk]
        if tag == "equal":
            _add(segments, "equal", "".join(left))
        else:
            _diff_words(segments, left, right)


def _diff_words(segments: list[DiffSegment], a: Sequence[str], b: Sequence[str]) -> None:
    if not a or not b:
        _add(segments, "delete", "".join(a))
        _add(segments, "insert", "".join(b))
        return
    if len(a) * len(b) > WORD_BUDGET:  # too big for one matcher: halves by position
        half_a, half_b = len(a) // 2 or 1, len(b) // 2 or 1
        _diff_words(segments, a[:half_a], b[:half_b])
        _diff_words(segments, a[half_a:], b[half_b:])
        return
    counts = Counter(b)
    if sum(counts[token] for token in a) > REPEAT_BUDGET:
        _add(segments, "delete", "".join(a))
        _add(segments, "insert", "".join(b))
        return
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _add(segments, "equal", "".join(a[i1:i2]))
        else:
            _add(segments, "delete", "".join(a[i1:i2]))
            _add(segments, "insert", "".join(b[j1:j2]))


def _add(segments: list[DiffSegment], kind: SegmentKind, text: str) -> None:
    """Append, merging with the previous segment of the same kind; empty text adds nothing."""
    if not text:
        return
    if segments and segments[-1].kind == kind:
        segments[-1] = DiffSegment(kind, segments[-1].text + text)
    elif kind == "delete" and len(segments) >= 2 and segments[-1].kind == "insert" and segments[-2].kind == "delete":
        # delete, insert, delete → one removal then one addition (reads better than alternating pieces)
        segments[-2] = DiffSegment("delete", segments[-2].text + text)
    else:
        segments.append(DiffSegment(kind, text))


def _common_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        count += 1
    return count
