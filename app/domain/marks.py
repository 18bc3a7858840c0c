"""Stars and tags on an interaction (pure): how tags are written, normalised and turned into search keys.

A tag is 1 to 32 word characters (Unicode letters, digits, ``_``) or ``-``, trimmed and case-folded
(``" Geo "`` and ``"GEO"`` are ``"geo"``); at most ``MAX_TAGS`` per interaction, each once, in the
order given. The record keeps ``starred: bool`` and ``tags: list[str]``, and its ``search_keys`` hold
``g:<tag>`` for each tag and ``f:starred`` when starred, so ``tag:x`` and the "starred" filter ride on
the same index as every other facet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from app.domain.templates import shown
from app.errors import TAGS_INVALID, TAGS_TOO_LONG, TAGS_TOO_MANY, InvalidTags

TAG_RE = re.compile(r"[\w-]{1,32}")
MAX_TAGS = 20
MAX_TAGS_TEXT = 2000
TAG_SEPARATORS = re.compile(r"[\s,]+")
TAG_KEY = "g:"
STARRED_KEY = "f:starred"
IMPORT_STARRED = "starred must be true or false"
IMPORT_TAGS = 'tags must be a list of tags such as ["geo", "todo"]'


def normalize_tag(value: str) -> str:
    """One tag as stored, or ``InvalidTags`` naming it."""
    tag = value.strip().casefold()
    if not TAG_RE.fullmatch(tag):
        raise InvalidTags(TAGS_INVALID.format(tag=shown(value.strip(), 40)))
    return tag


def normalize_tags(values: Iterable[str]) -> list[str]:
    """Tags as stored: each normalised, duplicates dropped (first one kept), at most ``MAX_TAGS``."""
    tags: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidTags(TAGS_INVALID.format(tag=shown(repr(value), 40)))
        tag = normalize_tag(value)
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidTags(TAGS_TOO_MANY.format(limit=MAX_TAGS))
    return tags


def parse_tags(text: str) -> list[str]:
    """What a person types in a tag box: tags separated by spaces and/or commas."""
    if len(text) > MAX_TAGS_TEXT:
        raise InvalidTags(TAGS_TOO_LONG.format(limit=MAX_TAGS_TEXT))
    return normalize_tags(part for part in TAG_SEPARATORS.split(text) if part)


def marks_from_record(record: Mapping[str, object]) -> tuple[bool, list[str]]:
    """``starred`` and ``tags`` of an imported record (absent: not starred, no tags), or ``InvalidTags``."""
    starred = record.get("starred", False)
    if starred is None:
        starred = False
    if not isinstance(starred, bool):
        raise InvalidTags(IMPORT_STARRED)
    tags = record.get("tags")
    if tags is None:
        return starred, []
    if not isinstance(tags, list):
        raise InvalidTags(IMPORT_TAGS)
    return starred, normalize_tags(tags)


def mark_keys(tags: Iterable[str], starred: bool) -> list[str]:
    """The search keys a record's marks contribute."""
    keys = [TAG_KEY + tag for tag in tags]
    if starred:
        keys.append(STARRED_KEY)
    return keys


def is_mark_key(key: str) -> bool:
    return key.startswith(TAG_KEY) or key == STARRED_KEY


def with_marks(keys: Iterable[str], *, tags: Iterable[str], starred: bool) -> list[str]:
    """``keys`` with their mark keys replaced by those of ``tags``/``starred`` (sorted, each once)."""
    return sorted({*(key for key in keys if not is_mark_key(key)), *mark_keys(tags, starred)})
