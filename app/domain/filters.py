"""What a history listing is narrowed to, and how one fetched document is checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.interaction import STATUS_OK
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

    def driving_term(self) -> tuple[str, str] | None:
        """The one extra indexed equality a query rides on (the rest is checked per document)."""
        term = self.search.driving_term()
        if term is not None:
            return term
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
        if self.search.is_empty:
            return True
        return self.search.matches_tokens(doc.get("search_tokens") or ())

    @property
    def narrows_beyond_owner(self) -> bool:
        """Whether more than one indexed equality is needed (the scan then checks documents itself)."""
        return not self.search.is_empty or sum(bool(v) for v in (self.model, self.task, self.status)) > 1


NO_FILTER = HistoryFilter()
