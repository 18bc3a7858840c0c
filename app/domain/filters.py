"""What a history listing is narrowed to, and how one fetched document is checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.interaction import STATUS_OK
from app.domain.marks import STARRED_KEY, TAG_KEY
from app.domain.search import MODEL_KEY, STATUS_KEY, TASK_KEY, SearchQuery, facet_key

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class HistoryFilter:
    """What a history listing is narrowed to; ``since`` is inclusive, ``until`` exclusive (UTC)."""

    search: SearchQuery = field(default_factory=lambda: SearchQuery(words=(), prefix=""))
    model: str = ""
    task: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # Marks (app/domain/marks.py): only starred interactions; only those carrying every tag.
    starred: bool = False
    tags: tuple[str, ...] = ()

    def driving_term(self) -> tuple[str, str] | None:
        """The one extra indexed equality a query rides on (the rest is checked per document)."""
        term = self.search.driving_term()
        if term is not None:
            return term
        if self.tags:
            return "search_keys", facet_key(TAG_KEY, self.tags[0])
        if self.starred:
            return "search_keys", STARRED_KEY
        for kind, value in ((MODEL_KEY, self.model), (TASK_KEY, self.task), (STATUS_KEY, self.status)):
            if value:
                return "search_keys", facet_key(kind, value)
        return None

    def accepts(self, doc: dict[str, Any]) -> bool:
        """Every condition, checked on a fetched document (the driving term alone was indexed)."""
        if doc.get("deleted_at") is not None:
            return False
        if self.model and doc.get("model") != self.model:
            return False
        if self.task and doc.get("task") != self.task:
            return False
        if self.status and doc.get("status", STATUS_OK) != self.status:
            return False
        if self.starred and doc.get("starred") is not True:
            return False
        if self.tags and not set(self.tags) <= set(doc.get("tags") or ()):
            return False
        if self.search.is_empty:
            return True
        return self.search.matches_tokens(doc.get("search_tokens") or ())

    @property
    def narrows_beyond_owner(self) -> bool:
        """Whether more than one indexed equality is needed (the scan then checks documents itself)."""
        facets = sum(bool(v) for v in (self.model, self.task, self.status)) + len(self.tags) + self.starred
        return not self.search.is_empty or facets > 1


NO_FILTER = HistoryFilter()
