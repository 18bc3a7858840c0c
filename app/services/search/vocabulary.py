"""Each owner's vocabulary, kept in MongoDB, for typo tolerance ("showing results for …").

One small document per (owner, word): ``{_id: "<owner>|<word>", owner, word, keys: [word, and the
word with each one letter deleted]}`` with a multikey index on ``(owner, keys)``. Two words are one
edit apart (insert, delete, replace, or a swap of neighbouring letters) only if one's keys meet the
other's deletions, so a correction is one indexed ``$in`` of at most 25 keys, checked exactly in
Python ("symmetric delete", as in SymSpell). Words are only ever added (``$setOnInsert``); each
process remembers the words it already wrote so a stored interaction costs one upsert per new word.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

logger = logging.getLogger(__name__)

VOCABULARY_SUFFIX = "_vocab"
# Words longer than this are not corrected (and not kept): they are ids, hashes, URLs.
MAX_WORD_CHARS = 24
MIN_CORRECTED_CHARS = 3
MAX_REMEMBERED = 200_000
# keys first: serves one owner's lookups and a shared history's (no owner) alike.
VOCABULARY_INDEXES: tuple[IndexModel, ...] = (
    IndexModel([("keys", ASCENDING), ("owner", ASCENDING)], name="keys_owner"),
    IndexModel([("word", ASCENDING)], name="word"),
)


def word_id(owner: str, word: str) -> str:
    return f"{owner}|{word}"


def deletions(word: str) -> list[str]:
    return sorted({word[:i] + word[i + 1 :] for i in range(len(word))})


def keys_of(word: str) -> list[str]:
    return [word, *deletions(word)]


class _Remembered:
    """The word ids this process already wrote (bounded, least recently used forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, ids: Iterable[str]) -> list[str]:
        with self._lock:
            fresh = [key for key in ids if key not in self._ids]
            for key in fresh:
                self._ids[key] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return fresh

    def forget(self, ids: Iterable[str]) -> None:
        with self._lock:
            for key in ids:
                self._ids.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


_remembered = _Remembered(MAX_REMEMBERED)


def forget_remembered() -> None:
    """Forget what this process wrote (after a vocabulary was deleted, and in tests)."""
    _remembered.clear()


def record_words(collection: Collection[dict[str, Any]], entries: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Add ``(owner, tokens)`` pairs to the owners' vocabularies (one upsert per word not seen before)."""
    words: dict[str, tuple[str, str]] = {}
    for owner, tokens in entries:
        for token in tokens:
            if is_recorded(token):
                words[word_id(owner, token)] = (owner, token)
    scope = collection.full_name + "/"
    fresh = [key[len(scope) :] for key in _remembered.new(scope + key for key in words)]
    if not fresh:
        return
    updates = [
        UpdateOne(
            {"_id": key},
            {"$setOnInsert": {"owner": words[key][0], "word": words[key][1], "keys": keys_of(words[key][1])}},
            upsert=True,
        )
        for key in fresh
    ]
    try:
        collection.bulk_write(updates, ordered=False)
    except PyMongoError as exc:  # the interaction is stored; only typo tolerance misses these words
        _remembered.forget(scope + key for key in fresh)
        logger.warning("Vocabulary update failed (%s); typo tolerance misses these words", exc.__class__.__name__)


def one_edit_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with one insert, delete, replace, or swap of neighbouring letters."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    short, long_ = (a, b) if la < lb else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def is_recorded(token: str) -> bool:
    """Whether vocabularies keep this token at all (else nothing can be said about it)."""
    return MIN_CORRECTED_CHARS - 1 <= len(token) <= MAX_WORD_CHARS and not token.isdigit()


def known_words(
    collection: Collection[dict[str, Any]], *, owner_query: dict[str, Any], owner: str | None, words: Iterable[str]
) -> set[str]:
    """Which of ``words`` the owner's interactions contain (``_id`` lookups; unrecorded words count as known).

    Answers from the vocabulary, never from the interactions: SecantusDB materialises every match of an
    equality before a limit, so "is there one interaction with this word" costs as many as there are.
    """
    wanted = list(dict.fromkeys(words))
    known = {word for word in wanted if not is_recorded(word)}
    probe = [word for word in wanted if word not in known]
    if not probe:
        return known
    if owner is not None:
        found = collection.find({"_id": {"$in": [word_id(owner, word) for word in probe]}}, {"word": 1})
    else:
        found = collection.find({**owner_query, "word": {"$in": probe}}, {"word": 1})
    return known | {str(doc.get("word")) for doc in found}


def has_prefix(
    collection: Collection[dict[str, Any]], *, owner_query: dict[str, Any], owner: str | None, prefix: str
) -> bool:
    """Whether some word of the owner starts with ``prefix``: a literal range on the ``word`` index
    (SecantusDB walks a range on ``_id`` without its index: 250 ms at 10k words, ~2 ms this way; an
    ``(owner, word)`` index would be picked for the deletion-key lookups too, and make those a scan)."""
    query: dict[str, Any] = {**owner_query, "word": {"$gte": prefix, "$lt": prefix + "\U0010ffff"}}
    return collection.find_one(query, {"_id": 1}) is not None


def forget_owner(collection: Collection[dict[str, Any]], owner_query: dict[str, Any]) -> None:
    """Delete an owner's vocabulary (their history was deleted)."""
    collection.delete_many(owner_query)
    _remembered.clear()


def copy_owner(collection: Collection[dict[str, Any]], *, source: str, target: str) -> None:
    """Give ``target`` the words of ``source`` (a visitor's history claimed by a logged-in user)."""
    entries = [(target, [str(doc["word"])]) for doc in collection.find({"owner": source}, {"word": 1})]
    record_words(collection, entries)


def neighbours(collection: Collection[dict[str, Any]], *, owner_query: dict[str, Any], word: str) -> list[str]:
    """The owner's words one edit away from ``word`` (sorted): one indexed query on the deletion keys."""
    if not MIN_CORRECTED_CHARS <= len(word) <= MAX_WORD_CHARS:
        return []
    probe = keys_of(word)
    found = {
        str(doc.get("word")) for doc in collection.find({**owner_query, "keys": {"$in": probe}}, {"word": 1}).limit(500)
    }
    return sorted(candidate for candidate in found if one_edit_apart(word, candidate))


def rebuild_vocabulary(
    interactions: Collection[dict[str, Any]], vocabulary: Collection[dict[str, Any]], *, batch: int = 2000
) -> int:
    """Add every stored interaction's words to its owner's vocabulary; returns how many were read."""
    count = 0
    entries: list[tuple[str, list[str]]] = []
    for doc in interactions.find({"owner": {"$exists": True}}, {"owner": 1, "search_tokens": 1}):
        owner = doc.get("owner")
        if not isinstance(owner, str) or owner.startswith("x:"):
            continue
        entries.append((owner, list(doc.get("search_tokens") or ())))
        count += 1
        if len(entries) >= batch:
            record_words(vocabulary, entries)
            entries = []
    record_words(vocabulary, entries)
    return count
