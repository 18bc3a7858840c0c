"""The search box's query language (pure: no Django, no PyMongo).

    capital "south of france" -paris -"new york" model:tiny status:ok tag:geo after:2026-01-01 before:2026-02-01

* bare words must all match (the last one, while still being typed, may be the start of a word);
* ``"a phrase"`` must appear as consecutive words; ``-word`` / ``-"a phrase"`` must not appear;
* ``model:`` / ``status:`` narrow to one model / status, ``tag:`` to interactions carrying that tag
  (each ``tag:`` must be carried; tags are the visitor's own, see app/domain/marks.py);
* ``after:D`` keeps interactions from the start of UTC day ``D`` on, ``before:D`` those before it.

Everything is a sensible reading, never an error: an unbalanced quote reads as plain words, an
unknown ``field:`` as words, a bare ``-`` as nothing, a bad date or status is ignored with a note.
Words go through the same tokenizer as stored text, so ``$ne``, ``.*`` or ``(a|b)`` become plain
words; field values are kept as literal strings for equality (never an operator, never a regex).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time

from app.domain.search import MAX_QUERY_WORDS, tokenize

MAX_PHRASES = 4
MAX_PHRASE_WORDS = 8
MAX_EXCLUDED = 12
MAX_FIELD_VALUE_CHARS = 200
STATUSES: tuple[str, ...] = ("ok", "error", "cancelled")
FIELDS: tuple[str, ...] = ("model", "tag", "status", "before", "after")

NOTE_UNBALANCED_QUOTE = "An opening quote has no closing quote: the rest is read as plain words."
NOTE_UNKNOWN_FIELD = "“{name}:” is not a search field (use model:, tag:, status:, before:, after:): read as words."
NOTE_BAD_DATE = "{name}: needs a date like 2026-01-31; “{value}” is ignored."
NOTE_BAD_STATUS = "status: must be one of ok, error, cancelled; “{value}” is ignored."
NOTE_EMPTY_FIELD = "{name}: has no value and is ignored."
NOTE_TOO_MANY_WORDS = f"Only the first {MAX_QUERY_WORDS} words are used."

# A chunk: optional "-", optional "field:", then a quoted value or a run of non-space characters.
_CHUNK_RE = re.compile(r'(?P<neg>-?)(?:(?P<field>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]*))')


@dataclass(frozen=True)
class ParsedQuery:
    """What a query asks for; every text value is literal (tokens, or a field value for equality)."""

    words: tuple[str, ...] = ()
    prefix: str = ""
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[str, ...] = ()
    excluded_phrases: tuple[tuple[str, ...], ...] = ()
    model: str = ""
    tags: tuple[str, ...] = ()
    status: str = ""
    after: datetime | None = None
    before: datetime | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def has_terms(self) -> bool:
        """Whether there is text to rank by (words, a prefix or phrases), not just filters."""
        return bool(self.words or self.prefix or self.phrases)

    @property
    def is_empty(self) -> bool:
        return not (
            self.has_terms
            or self.excluded
            or self.excluded_phrases
            or self.model
            or self.tags
            or self.status
            or self.after
            or self.before
        )

    @property
    def required_words(self) -> tuple[str, ...]:
        """Bare words plus the words of every phrase, each once, in query order."""
        ordered = [*self.words, *(word for phrase in self.phrases for word in phrase)]
        return tuple(dict.fromkeys(ordered))

    @property
    def all_terms(self) -> tuple[str, ...]:
        """What the visitor typed as text, for the semantic side: words, phrases and the prefix."""
        terms = list(self.required_words)
        if self.prefix and self.prefix not in terms:
            terms.append(self.prefix)
        return tuple(terms)

    def semantic_text(self) -> str:
        return " ".join(self.all_terms)

    def with_corrections(self, corrections: dict[str, str]) -> ParsedQuery:
        """The same query with some words replaced (typo tolerance: ``{"captial": "capital"}``)."""
        if not corrections:
            return self
        words = tuple(dict.fromkeys(corrections.get(word, word) for word in self.words))
        phrases = tuple(tuple(corrections.get(word, word) for word in phrase) for phrase in self.phrases)
        prefix = corrections.get(self.prefix, self.prefix) if self.prefix else ""
        return replace(self, words=words, phrases=phrases, prefix=prefix)

    def display(self) -> str:
        """A normalized rendering of the text part (what "showing results for …" names)."""
        parts = [*self.words, *(f'"{" ".join(phrase)}"' for phrase in self.phrases)]
        if self.prefix:
            parts.append(self.prefix)
        return " ".join(parts)


def _parse_day(value: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value.strip()), time(), tzinfo=UTC)
    except ValueError:
        return None


class _Builder:
    def __init__(self) -> None:
        self.words: list[str] = []
        self.phrases: list[tuple[str, ...]] = []
        self.excluded: list[str] = []
        self.excluded_phrases: list[tuple[str, ...]] = []
        self.tags: list[str] = []
        self.model = ""
        self.status = ""
        self.after: datetime | None = None
        self.before: datetime | None = None
        self.notes: list[str] = []
        self.word_count = 0

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def add_words(self, tokens: list[str], *, negative: bool, phrase: bool) -> None:
        if not tokens:
            return
        if negative:
            if phrase and len(tokens) > 1:
                if len(self.excluded_phrases) < MAX_PHRASES:
                    self.excluded_phrases.append(tuple(tokens[:MAX_PHRASE_WORDS]))
            else:
                self.excluded.extend(tokens[: max(0, MAX_EXCLUDED - len(self.excluded))])
            return
        room = MAX_QUERY_WORDS - self.word_count
        if room <= 0:
            self.note(NOTE_TOO_MANY_WORDS)
            return
        if len(tokens) > room:
            self.note(NOTE_TOO_MANY_WORDS)
        tokens = tokens[:room]
        if phrase and len(tokens) > 1:
            if len(self.phrases) < MAX_PHRASES:
                self.phrases.append(tuple(tokens[:MAX_PHRASE_WORDS]))
                self.word_count += len(tokens)
            return
        self.words.extend(tokens)
        self.word_count += len(tokens)

    def add_field(self, name: str, value: str, *, negative: bool) -> None:
        value = value.strip()[:MAX_FIELD_VALUE_CHARS]
        if not value:
            self.note(NOTE_EMPTY_FIELD.format(name=name))
            return
        if name == "model" and not negative:
            self.model = value
        elif name == "tag" and not negative:
            self.tags.append(value.casefold())
        elif name == "status" and not negative:
            if value.casefold() in STATUSES:
                self.status = value.casefold()
            else:
                self.note(NOTE_BAD_STATUS.format(value=value))
        elif name in ("before", "after") and not negative:
            day = _parse_day(value)
            if day is None:
                self.note(NOTE_BAD_DATE.format(name=name, value=value))
            elif name == "before":
                self.before = day if self.before is None else min(self.before, day)
            else:
                self.after = day if self.after is None else max(self.after, day)
        else:
            # "-model:x" and friends: read as excluded words rather than guess a meaning.
            self.add_words(tokenize(value), negative=True, phrase=False)


def parse(text: str) -> ParsedQuery:
    """Read ``text`` (any length, any characters) as a query; linear in ``len(text)``."""
    builder = _Builder()
    if text.count('"') % 2:
        builder.note(NOTE_UNBALANCED_QUOTE)
        last = text.rfind('"')
        text = text[:last] + " " + text[last + 1 :]
    position = 0
    last_bare: tuple[int, str] | None = None
    length = len(text)
    while position < length:
        if text[position].isspace():
            position += 1
            continue
        match = _CHUNK_RE.match(text, position)
        if match is None or match.end() == position:  # a stray quote; cannot happen after balancing
            position += 1
            continue
        position = match.end()
        negative = bool(match.group("neg"))
        name = (match.group("field") or "").casefold()
        quoted = match.group("quoted")
        value = quoted if quoted is not None else (match.group("bare") or "")
        if name:
            if name in FIELDS:
                builder.add_field(name, value, negative=negative)
                continue
            builder.note(NOTE_UNKNOWN_FIELD.format(name=match.group("field")))
            value = f"{match.group('field')} {value}"
        tokens = tokenize(value)
        if not negative and quoted is None and tokens:
            last_bare = (match.end(), tokens[-1])
        builder.add_words(tokens, negative=negative, phrase=quoted is not None)
    words = list(dict.fromkeys(builder.words))
    prefix = ""
    # The last bare word still being typed (no space after it) may be the start of a word.
    typing = last_bare is not None and last_bare[0] == length and bool(words) and words[-1] == last_bare[1]
    if typing and last_bare is not None and builder.words.count(last_bare[1]) == 1:
        prefix = words.pop()
    return ParsedQuery(
        words=tuple(words),
        prefix=prefix,
        phrases=tuple(dict.fromkeys(builder.phrases)),
        excluded=tuple(dict.fromkeys(builder.excluded)),
        excluded_phrases=tuple(dict.fromkeys(builder.excluded_phrases)),
        model=builder.model,
        tags=tuple(dict.fromkeys(builder.tags)),
        status=builder.status,
        after=builder.after,
        before=builder.before,
        notes=tuple(builder.notes),
    )
