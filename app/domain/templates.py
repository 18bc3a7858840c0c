"""Prompt templates: a named body with ``{{variable}}`` placeholders (pure: no Django, no PyMongo).

Syntax: ``{{name}}`` or ``{{ name }}`` (spaces or tabs inside the braces), where ``name`` is
``[A-Za-z_][A-Za-z0-9_]*``. Single ``{`` and ``}`` are plain text; ``{{`` always opens a placeholder
and ``}}`` always closes one, so an unclosed ``{{``, a stray ``}}``, an empty ``{{}}``, a brace inside
a placeholder and a bad variable name are errors that name the line, the column and the text there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.text import is_storable
from app.errors import (
    TEMPLATE_BODY_EMPTY,
    TEMPLATE_BODY_TOO_LONG,
    TEMPLATE_BODY_UNSTORABLE,
    TEMPLATE_NAME_INVALID,
    InvalidTemplate,
)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VARIABLE_CHARS = 64
INNER_SPACES = " \t"
SNIPPET_CHARS = 24
OPEN = "{{"
CLOSE = "}}"

SYNTAX_UNCLOSED = "“{{{{” at {where} is never closed: add “}}}}” after the variable name."
SYNTAX_STRAY_CLOSE = "“}}}}” at {where} closes nothing: remove it or add the “{{{{” that opens it."
SYNTAX_EMPTY = "“{{{{}}}}” at {where} has no variable name: write one, like {{{{topic}}}}."
SYNTAX_NESTED = "A brace inside “{{{{ … }}}}” at {where}: placeholders cannot be nested or hold braces."
SYNTAX_BAD_NAME = (
    "“{name}” at {where} is not a variable name: use letters, digits and “_”, not starting with a digit "
    "(like {{{{topic}}}} or {{{{user_name}}}})."
)


@dataclass(frozen=True)
class Placeholder:
    """One ``{{name}}`` in a body: the variable and where it sits (``start`` inclusive, ``end`` exclusive)."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class PromptTemplate:
    """A saved template of one owner (``id`` is the store's id; ``name`` is unique per owner)."""

    id: str
    name: str
    body: str
    created_at: datetime
    updated_at: datetime
    variables: tuple[str, ...] = field(default=())


def shown(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` safe to put in a message: one line, cut at ``limit``, unstorable characters replaced."""
    clean = "".join(ch if is_storable(ch) else "\ufffd" for ch in text[: limit + 1])
    clean = clean.replace("\r", " ").replace("\n", "⏎").replace("\t", " ")
    return clean[:limit] + "…" if len(clean) > limit else clean


def _where(body: str, index: int) -> str:
    line = body.count("\n", 0, index) + 1
    column = index - (body.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column} (“{shown(body[index:])}”)"


def parse_body(body: str) -> list[Placeholder]:
    """Every placeholder of ``body`` in order, or ``InvalidTemplate`` naming the first broken one."""
    found: list[Placeholder] = []
    index = 0
    length = len(body)
    while index < length:
        if body.startswith(OPEN, index):
            close = body.find(CLOSE, index + len(OPEN))
            if close == -1:
                raise InvalidTemplate(SYNTAX_UNCLOSED.format(where=_where(body, index)))
            inner = body[index + len(OPEN) : close]
            brace = next((offset for offset, ch in enumerate(inner) if ch in "{}"), None)
            if brace is not None:
                raise InvalidTemplate(SYNTAX_NESTED.format(where=_where(body, index)))
            name = inner.strip(INNER_SPACES)
            if not name:
                raise InvalidTemplate(SYNTAX_EMPTY.format(where=_where(body, index)))
            if len(name) > MAX_VARIABLE_CHARS or not VARIABLE_RE.fullmatch(name):
                raise InvalidTemplate(SYNTAX_BAD_NAME.format(name=shown(name), where=_where(body, index)))
            end = close + len(CLOSE)
            found.append(Placeholder(name=name, start=index, end=end))
            index = end
            continue
        if body.startswith(CLOSE, index):
            raise InvalidTemplate(SYNTAX_STRAY_CLOSE.format(where=_where(body, index)))
        index += 1
    return found


def template_variables(body: str) -> tuple[str, ...]:
    """The distinct variable names of ``body`` in order of first appearance."""
    return tuple(dict.fromkeys(placeholder.name for placeholder in parse_body(body)))


def check_name(name: str) -> str:
    """The name without surrounding spaces, or ``InvalidTemplate`` (field ``name``)."""
    cleaned = name.strip()
    if not NAME_RE.fullmatch(cleaned):
        raise InvalidTemplate(TEMPLATE_NAME_INVALID, field="name")
    return cleaned


def check_body(body: str, *, max_chars: int) -> str:
    """The body as stored (unchanged), or ``InvalidTemplate`` (field ``body``) saying what is wrong."""
    if not is_storable(body):
        raise InvalidTemplate(TEMPLATE_BODY_UNSTORABLE)
    if not body.strip():
        raise InvalidTemplate(TEMPLATE_BODY_EMPTY)
    if len(body) > max_chars:
        raise InvalidTemplate(TEMPLATE_BODY_TOO_LONG.format(limit=max_chars))
    parse_body(body)
    return body


def fill(body: str, values: dict[str, str]) -> str:
    """``body`` with each known variable replaced (unknown ones stay as they are)."""
    parts: list[str] = []
    cursor = 0
    for placeholder in parse_body(body):
        parts.append(body[cursor : placeholder.start])
        parts.append(values.get(placeholder.name, body[placeholder.start : placeholder.end]))
        cursor = placeholder.end
    parts.append(body[cursor:])
    return "".join(parts)
