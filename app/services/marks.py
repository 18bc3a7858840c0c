"""Stars and tags: the visitor marks one of their interactions (targeted updates, see mongo_marks.py)."""

from __future__ import annotations

from app.domain.interaction import Interaction, Scope
from app.domain.marks import parse_tags
from app.services import mongo_marks
from app.services.mongo_repo import get_repository


def set_star(*, scope: Scope, interaction_id: str, starred: bool) -> Interaction:
    return mongo_marks.set_marks(get_repository(), interaction_id, scope=scope, starred=starred)


def set_tags(*, scope: Scope, interaction_id: str, text: str) -> Interaction:
    """Replace the tags with those typed in ``text`` (``InvalidTags`` before anything is written)."""
    tags = parse_tags(text)
    return mongo_marks.set_marks(get_repository(), interaction_id, scope=scope, tags=tags)


def owner_tags(*, scope: Scope) -> list[tuple[str, int]]:
    return mongo_marks.owner_tags(get_repository(), scope=scope)
