"""Facet counts (per model, tag and status) for the interactions a search found.

Counted in Python over the ranked result set, which is bounded and already in memory (keyword
candidates as records, semantic hits with the model and status their vector index keeps). A
MongoDB ``$group`` over those ids was measured first: ``$match`` on ``_id: {$in: 1000 ids}`` costs
0.8 s on SecantusDB (14 s with the owner in the same ``$match``), so the store is not asked again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_VALUES = 12


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    models: list[FacetCount] = field(default_factory=list)
    tags: list[FacetCount] = field(default_factory=list)
    statuses: list[FacetCount] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.models or self.tags or self.statuses)

    def as_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [{"value": item.value, "count": item.count} for item in values]
            for name, values in (("model", self.models), ("tag", self.tags), ("status", self.statuses))
        }


@dataclass(frozen=True)
class FacetEntry:
    """What one result contributes: its model, its status and its tags."""

    model: str
    status: str
    tags: tuple[str, ...] = ()


def _top(counts: Counter[str]) -> list[FacetCount]:
    ordered = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return [FacetCount(value=value, count=count) for value, count in ordered[:MAX_VALUES]]


def count_facets(entries: Iterable[FacetEntry]) -> Facets:
    models: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    for entry in entries:
        models[entry.model] += 1
        statuses[entry.status or "ok"] += 1
        tags.update(entry.tags)
    return Facets(models=_top(models), tags=_top(tags), statuses=_top(statuses))
