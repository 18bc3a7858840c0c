"""History search end to end: query language → keyword and/or semantic hits → fused, paged, faceted.

``history_search`` serves both the page and the JSON API. A box with no text to rank (empty, or only
``model:``/``status:``/dates) is the plain newest-first keyset listing of ``history``; anything else
is ranked from a bounded candidate set (≤ ``MAX_CANDIDATES`` per mode) and paged by an offset cursor
(``r40``: the 41st result of the same query). Modes: ``keyword``, ``semantic``, ``hybrid`` (reciprocal
rank fusion of both; the default when an embedder is configured); sort ``relevance`` (default with
text) or ``newest``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from app.domain.filters import HistoryFilter
from app.domain.interaction import Interaction, Scope
from app.domain.search import SearchQuery, highlight, tokenize
from app.errors import StoreUnavailable
from app.services import history
from app.services.mongo_documents import from_document
from app.services.mongo_repo import InteractionRepository, get_repository, store_errors
from app.services.search import atlas
from app.services.search.facets import FacetEntry, Facets, count_facets
from app.services.search.indexer import get_worker  # importing it registers the embedding queue
from app.services.search.keyword import MAX_CANDIDATES, keyword_search
from app.services.search.query import ParsedQuery, parse
from app.services.search.ranking import excluded, reciprocal_rank_fusion
from app.services.search.semantic import Embedder, EmbedderUnavailable, get_embedder
from app.services.search.vectors import VectorFilter, VectorHit, get_vector_indexes, object_ids

logger = logging.getLogger(__name__)

SORTS: tuple[str, ...] = ("relevance", "newest")
MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
RANKED_CURSOR_RE = re.compile(r"^r(\d{1,5})$")
MAX_SEMANTIC_HITS = 100
FETCH_BATCH = 25
NOTE_SEMANTIC_OFF = "Semantic search is not available here: keyword results are shown."
NOTE_SEMANTIC_FAILED = "Semantic search failed just now: keyword results are shown."
NOTE_CAPPED = f"Ranked among the newest {MAX_CANDIDATES} matching interactions."
NOTE_STILL_INDEXING = "Interactions stored moments ago are still being indexed for meaning: search again shortly."
# Read your own writes: a search waits this long for this process's embedding queue (the model loads on
# the first store, ~4 s; a batch of 32 takes ~1 s). The request never computes an embedding itself.
FRESH_WAIT_SECONDS = 5.0
CORRECTED_KEYWORD_WEIGHT = 0.5


@dataclass(frozen=True)
class SearchPage:
    rows: list[history.HistoryRow]
    next_cursor: str | None
    ranked: bool = False
    mode: str = "keyword"
    sort: str = "newest"
    showing_for: str | None = None
    notes: tuple[str, ...] = ()
    facets: Facets = field(default_factory=Facets)

    @property
    def items(self) -> list[Interaction]:
        return [row.interaction for row in self.rows]


def ranked_offset(cursor: str | None) -> int | None:
    """The offset a ranked cursor (``r40``) names, ``None`` for a keyset cursor or none."""
    match = RANKED_CURSOR_RE.match(cursor or "")
    return int(match.group(1)) if match else None


def needs_ranking(query: ParsedQuery) -> bool:
    # ``tag:`` alone narrows like a filter (an indexed search key), so it needs no ranking.
    return bool(query.has_terms or query.excluded or query.excluded_phrases)


def merge_filters(query: ParsedQuery, filters: HistoryFilter) -> HistoryFilter:
    """The form's filters narrowed by the box's fields (``model:``/``status:`` in the box win)."""
    since = max((d for d in (filters.since, query.after) if d is not None), default=None)
    until = min((d for d in (filters.until, query.before) if d is not None), default=None)
    return replace(
        filters,
        search=SearchQuery(words=query.required_words, prefix=query.prefix),
        model=query.model or filters.model,
        status=query.status or filters.status,
        tags=tuple(dict.fromkeys((*filters.tags, *query.tags))),
        since=since,
        until=until,
    )


def _accepts(item: Interaction, query: ParsedQuery, filters: HistoryFilter) -> bool:
    """The filters a semantic hit must pass (the keyword side checks them in its scan)."""
    if filters.model and item.model != filters.model:
        return False
    if filters.task and item.task != filters.task:
        return False
    if filters.status and item.status != filters.status:
        return False
    if filters.since is not None and item.created_at < filters.since:
        return False
    if filters.until is not None and item.created_at >= filters.until:
        return False
    if filters.starred and not item.starred:
        return False
    if filters.tags and not set(filters.tags) <= set(item.tags):
        return False
    return not excluded(query, tokenize(item.prompt), tokenize(item.output))


def _owned(doc: dict[str, Any], scope: Scope) -> bool:
    """The ownership rule of ``Scope.query`` checked on a fetched document (never trust the vector index)."""
    if doc.get("deleted_at") is not None:
        return False
    return scope.shared or doc.get("owner") == scope.owner


def _semantic_hits(
    repository: InteractionRepository, embedder: Embedder, *, scope: Scope, query: ParsedQuery, filters: HistoryFilter
) -> list[VectorHit]:
    """Vector hits, best first, already narrowed by model/task/status/dates (Atlas or the local index)."""
    vector = embedder.embed([query.semantic_text()])[0]
    collection = repository.collection
    if atlas.search_supported(collection):
        pipeline = atlas.vector_search_pipeline(
            vector=vector.tolist(),
            owner_query=scope.query(),
            query=query,
            model=filters.model,
            status=filters.status,
            limit=MAX_SEMANTIC_HITS,
        )
        with store_errors("search"):
            rows = list(collection.aggregate(pipeline))
        return [
            VectorHit(
                id=str(row["_id"]),
                score=float(row.get("score", 0)),
                model=str(row.get("model", "")),
                status=str(row.get("status", "ok")),
                created_ms=int(row["created_at"].timestamp() * 1000) if "created_at" in row else 0,
            )
            for row in rows
            if float(row.get("score", 0)) >= atlas.MIN_VECTOR_SCORE
        ]
    where = VectorFilter(
        model=filters.model, task=filters.task, status=filters.status, since=filters.since, until=filters.until
    )

    def oldest() -> datetime | None:
        first = repository.days.find(scope.query(), {"day": 1}).sort("day", ASCENDING).limit(1)
        return next((doc["day"] for doc in first), None)

    with store_errors("search"):
        index = get_vector_indexes().for_owner(
            collection, owner_query=scope.query(), model_name=embedder.name, oldest=oldest
        )
    return index.search(vector, limit=MAX_SEMANTIC_HITS, threshold=embedder.threshold, where=where)


def _materialize(
    repository: InteractionRepository,
    *,
    scope: Scope,
    order: list[str],
    known: dict[str, Interaction],
    query: ParsedQuery,
    filters: HistoryFilter,
    want: int,
) -> list[Interaction]:
    """The first ``want`` results in ``order``: keyword hits as they are, semantic ones read in small
    ``_id`` batches (SecantusDB answers ``$in`` of 25 ids in ~2 ms, of 1000 in ~800 ms) and checked
    for owner and filters here."""
    out: list[Interaction] = []
    fetched: dict[str, Interaction | None] = {}
    for position, key in enumerate(order):
        if len(out) >= want:
            break
        if key in known:
            out.append(known[key])
            continue
        if key not in fetched:
            chunk = [k for k in order[position:] if k not in known and k not in fetched][:FETCH_BATCH]
            fetched.update(dict.fromkeys(chunk))
            with store_errors("search"):
                for doc in repository.collection.find({"_id": {"$in": object_ids(chunk)}}, {"embedding": 0}):
                    if _owned(doc, scope):
                        fetched[str(doc["_id"])] = from_document(doc)
        item = fetched.get(key)
        if item is not None and _accepts(item, query, filters):
            out.append(item)
    return out


def _resolve_mode(requested: str, embedder: Embedder | None, notes: list[str]) -> str:
    if requested in ("hybrid", "semantic") and embedder is None:
        notes.append(NOTE_SEMANTIC_OFF)
        return "keyword"
    if requested in MODES:
        return requested
    return "hybrid" if embedder is not None else "keyword"


def history_search(
    *,
    scope: Scope,
    filters: HistoryFilter,
    text: str,
    cursor: str | None,
    sort: str = "",
    mode: str = "",
    limit: int = history.PAGE_SIZE,
) -> SearchPage:
    """One page of results for the search box ``text`` with the form's ``filters``."""
    query = parse(text)
    merged = merge_filters(query, filters)
    if not needs_ranking(query):
        page = history.history_page(scope=scope, filters=merged, cursor=cursor, limit=limit)
        return SearchPage(rows=page.rows, next_cursor=page.next_cursor, notes=query.notes)
    repository = get_repository()
    notes = list(query.notes)
    embedder = get_embedder() if query.has_terms else None
    used_mode = _resolve_mode(mode, embedder, notes) if query.has_terms else "keyword"
    keyword_items: list[Interaction] = []
    shown_query = query
    showing_for: str | None = None
    if used_mode in ("keyword", "hybrid"):
        result = keyword_search(repository, scope=scope, query=query, filters=merged)
        keyword_items = [hit.interaction for hit in result.hits]
        shown_query = result.query
        if result.corrections:
            showing_for = result.query.display()
        if result.capped:
            notes.append(NOTE_CAPPED)
    semantic: list[VectorHit] = []
    if used_mode in ("semantic", "hybrid") and embedder is not None:
        worker = get_worker()
        if worker.pending() and not worker.wait_idle(FRESH_WAIT_SECONDS):
            notes.append(NOTE_STILL_INDEXING)
        try:
            semantic = _semantic_hits(repository, embedder, scope=scope, query=query, filters=merged)
        except (EmbedderUnavailable, StoreUnavailable) as exc:
            if used_mode == "semantic":
                raise
            logger.warning("Semantic side of a hybrid search failed: %s", exc)
            notes.append(NOTE_SEMANTIC_FAILED)
    known = {item.id: item for item in keyword_items}
    if used_mode == "hybrid":
        # Keyword hits found only after a typo correction are a guess: they count half.
        keyword_weight = CORRECTED_KEYWORD_WEIGHT if showing_for else 1.0
        order = reciprocal_rank_fusion(
            [[hit.id for hit in semantic], [item.id for item in keyword_items]], weights=(1.0, keyword_weight)
        )
    elif used_mode == "keyword":
        order = [item.id for item in keyword_items]
    else:
        order = [hit.id for hit in semantic]
    entries = {hit.id: FacetEntry(model=hit.model, status=hit.status) for hit in semantic}
    entries.update(
        {item.id: FacetEntry(model=item.model, status=item.status, tags=tuple(item.tags)) for item in keyword_items}
    )
    used_sort = sort if sort in SORTS else "relevance"
    if used_sort == "newest":
        created = {hit.id: hit.created_ms for hit in semantic}
        created.update({item.id: int(item.created_at.timestamp() * 1000) for item in keyword_items})
        order.sort(key=lambda key: (created.get(key, 0), key), reverse=True)
    offset = ranked_offset(cursor) or 0
    found = _materialize(
        repository, scope=scope, order=order, known=known, query=query, filters=merged, want=offset + limit + 1
    )
    chosen = found[offset : offset + limit]
    more = len(found) > offset + limit
    marks = SearchQuery(words=shown_query.required_words, prefix=shown_query.prefix)
    rows = [
        history.HistoryRow(
            interaction=item,
            prompt=highlight(item.prompt, marks, width=120),
            output=highlight(item.output, marks),
        )
        for item in chosen
    ]
    facets = count_facets(entries[key] for key in order if key in entries)
    return SearchPage(
        rows=rows,
        next_cursor=f"r{offset + limit}" if more else None,
        ranked=True,
        mode=used_mode,
        sort=used_sort,
        showing_for=showing_for,
        notes=tuple(dict.fromkeys(notes)),
        facets=facets,
    )
