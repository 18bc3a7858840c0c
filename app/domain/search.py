"""Search without a search server: normalized tokens stored in each document, matched through an index.

Text is tokenized the same way when it is stored and when it is searched: accents stripped
(NFKD, combining marks dropped), case folded, split on anything that is not a letter or a digit.
Each document keeps

* ``search_tokens`` — its distinct words (multikey index), for whole-word matches;
* ``search_keys`` — the first three letters of those words (``p:cap``) and its facets
  (``m:<model>``, ``t:<task>``, ``s:<status>``), for the last word typed and for filters.

A query matches when every word matches a stored word exactly and the last word is a prefix of one.
Everything the user typed is only ever compared as a plain string (equality, ``str.startswith``):
no user text is turned into a regular expression.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

WORD_RE = re.compile(r"[^\W_]+")
MAX_TOKEN_CHARS = 40
MAX_TOKENS_PER_DOCUMENT = 2000
MAX_QUERY_WORDS = 12
PREFIX_KEY_CHARS = 3
SNIPPET_CHARS = 180
SNIPPET_LEAD_CHARS = 50

PREFIX_KEY = "p:"
MODEL_KEY = "m:"
TASK_KEY = "t:"
STATUS_KEY = "s:"


def normalize(text: str) -> str:
    """Lower-case, accent-free form of ``text`` (``"Crème Brûlée"`` → ``"creme brulee"``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def tokenize(text: str) -> list[str]:
    """Every word of ``text`` in order, normalized (duplicates kept)."""
    return [word[:MAX_TOKEN_CHARS] for word in WORD_RE.findall(normalize(text))]


def document_tokens(*texts: str) -> list[str]:
    """The distinct words of ``texts``, sorted, capped (what ``search_tokens`` stores)."""
    seen: set[str] = set()
    for text in texts:
        seen.update(tokenize(text))
    return sorted(seen)[:MAX_TOKENS_PER_DOCUMENT]


def facet_key(kind: str, value: str) -> str:
    return f"{kind}{value}"


def document_keys(tokens: Iterable[str], *, model: str, task: str, status: str) -> list[str]:
    """Prefix keys of ``tokens`` plus the facet keys (what ``search_keys`` stores)."""
    keys = {PREFIX_KEY + token[:PREFIX_KEY_CHARS] for token in tokens}
    keys.update((facet_key(MODEL_KEY, model), facet_key(TASK_KEY, task), facet_key(STATUS_KEY, status)))
    return sorted(keys)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: ``words`` must all match exactly, ``prefix`` must start one stored word."""

    words: tuple[str, ...]
    prefix: str

    @property
    def is_empty(self) -> bool:
        return not self.words and not self.prefix

    def matches_tokens(self, tokens: Iterable[str]) -> bool:
        stored = set(tokens)
        if not all(word in stored for word in self.words):
            return False
        return not self.prefix or any(token.startswith(self.prefix) for token in stored)

    def matches_word(self, token: str) -> bool:
        return token in self.words or (bool(self.prefix) and token.startswith(self.prefix))

    def driving_term(self) -> tuple[str, str] | None:
        """The most selective indexed term: ``("search_tokens", word)`` or ``("search_keys", "p:…")``."""
        if self.words:
            return "search_tokens", max(self.words, key=len)
        if len(self.prefix) >= PREFIX_KEY_CHARS:
            return "search_keys", PREFIX_KEY + self.prefix[:PREFIX_KEY_CHARS]
        # One or two letters match most documents: reading the newest windows finds them fastest.
        return None


def parse_query(text: str) -> SearchQuery:
    """Split what the user typed: all words but the last are whole words, the last is a prefix.

    A trailing space means the last word is finished, so it must match whole.
    """
    words = tokenize(text)[:MAX_QUERY_WORDS]
    if not words:
        return SearchQuery(words=(), prefix="")
    finished = text[-1:].isspace()
    if finished:
        return SearchQuery(words=tuple(dict.fromkeys(words)), prefix="")
    *whole, last = words
    return SearchQuery(words=tuple(dict.fromkeys(whole)), prefix=last)


@dataclass(frozen=True)
class Segment:
    """A piece of a snippet; ``marked`` pieces are the matched words (the template escapes ``text``)."""

    text: str
    marked: bool = False


def _matched_spans(text: str, query: SearchQuery) -> Iterator[tuple[int, int]]:
    for match in WORD_RE.finditer(text):
        token = tokenize(match.group())
        if token and query.matches_word(token[0]):
            yield match.start(), match.end()


def highlight(text: str, query: SearchQuery, *, width: int = SNIPPET_CHARS) -> list[Segment]:
    """A snippet of ``text`` around the first match, split into plain and matched segments.

    Matching runs on the original text word by word (each word normalized on its own), so accents
    and case in the stored text are kept in what is shown.
    """
    spans = list(_matched_spans(text, query)) if not query.is_empty else []
    start = 0
    if spans and spans[0][0] > SNIPPET_LEAD_CHARS:
        start = spans[0][0] - SNIPPET_LEAD_CHARS
        boundary = text.rfind(" ", 0, start + 1)
        start = boundary + 1 if boundary >= 0 and spans[0][0] - boundary <= width // 2 else start
    end = min(len(text), start + width)
    segments: list[Segment] = [Segment("…")] if start > 0 else []
    cursor = start
    for span_start, span_end in spans:
        if span_end <= start:
            continue
        if span_start >= end:
            break
        span_start = max(span_start, start)
        span_end = min(span_end, end)
        if span_start > cursor:
            segments.append(Segment(text[cursor:span_start]))
        segments.append(Segment(text[span_start:span_end], marked=True))
        cursor = span_end
    if cursor < end:
        segments.append(Segment(text[cursor:end]))
    if end < len(text):
        segments.append(Segment("…"))
    return segments
