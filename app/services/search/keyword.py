"""Keyword search: a bounded candidate set from the token index, ranked in Python, typo-tolerant.

Candidates are the newest ``MAX_CANDIDATES`` interactions of the owner whose stored words hold every
query word (the repository's windowed, index-backed scan), so the cost of a query is bounded whatever
the size of the history. A word that no interaction of the owner contains is replaced by the owner's
word one edit away that most interactions contain, and the page says "showing results for …".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from app.domain.filters import HistoryFilter
from app.domain.interaction import Interaction, Scope
from app.domain.search import SearchQuery
from app.services.mongo_documents import from_document
from app.services.mongo_repo import InteractionRepository, store_errors
from app.services.search import atlas
from app.services.search.query import ParsedQuery
from app.services.search.ranking import Relevance, relevance
from app.services.search.vocabulary import MIN_CORRECTED_CHARS, has_prefix, known_words, neighbours

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 200


@dataclass(frozen=True)
class KeywordHit:
    interaction: Interaction
    relevance: Relevance


@dataclass(frozen=True)
class KeywordResult:
    hits: list[KeywordHit]
    query: ParsedQuery
    corrections: dict[str, str]
    capped: bool


def token_filter(query: ParsedQuery, filters: HistoryFilter) -> HistoryFilter:
    """The index-backed part of ``query``: every word (phrase words too) and the prefix."""
    return replace(filters, search=SearchQuery(words=query.required_words, prefix=query.prefix))


def candidates(
    repository: InteractionRepository, *, scope: Scope, query: ParsedQuery, filters: HistoryFilter
) -> list[Interaction]:
    """The newest interactions holding every word (the token index), or Atlas Search's best, when the
    cluster has it; either way ranked afterwards by the same rules (``rank``)."""
    if atlas.search_supported(repository.collection):
        return _atlas_candidates(repository, scope=scope, query=query, filters=filters)
    found = repository.iter_interactions(scope=scope, filters=token_filter(query, filters))
    return list(islice(found, MAX_CANDIDATES + 1))


def _atlas_candidates(
    repository: InteractionRepository, *, scope: Scope, query: ParsedQuery, filters: HistoryFilter
) -> list[Interaction]:
    pipeline = atlas.text_search_pipeline(
        owner_query=scope.query(), query=query, model=filters.model, status=filters.status, limit=MAX_CANDIDATES
    )
    ids = [row["_id"] for row in repository.collection.aggregate(pipeline)]
    if not ids:
        return []
    docs = repository.collection.find({**scope.query(), "_id": {"$in": ids}}, {"embedding": 0})
    by_id = {doc["_id"]: doc for doc in docs if filters.accepts(doc) and _in_dates(doc, filters)}
    return [from_document(by_id[key]) for key in ids if key in by_id]


def _in_dates(doc: dict[str, Any], filters: HistoryFilter) -> bool:
    moment = doc.get("created_at")
    if filters.since is not None and (moment is None or moment < filters.since):
        return False
    return filters.until is None or (moment is not None and moment < filters.until)


def _tags_of(interaction: Interaction) -> set[str]:
    return {str(tag).casefold() for tag in getattr(interaction, "tags", None) or ()}


def rank(query: ParsedQuery, interactions: list[Interaction]) -> list[KeywordHit]:
    """The interactions that match, best first (see ``ranking``)."""
    hits: list[KeywordHit] = []
    for item in interactions:
        if query.tags and not set(query.tags) <= _tags_of(item):
            continue
        score = relevance(query, prompt=item.prompt, output=item.output, created_at=item.created_at)
        if score is not None:
            hits.append(KeywordHit(interaction=item, relevance=score))
    hits.sort(key=lambda hit: (hit.relevance.key(), hit.interaction.id), reverse=True)
    return hits


def _known(repository: InteractionRepository, scope: Scope, words: Iterable[str]) -> set[str]:
    return known_words(
        repository.vocabulary,
        owner_query=scope.query(),
        owner=None if scope.shared else scope.owner,
        words=words,
    )


def _edit_kind(word: str, option: str) -> int:
    """Preference among one-edit neighbours: a swap or a replaced letter before a missing or extra one."""
    return 0 if len(word) == len(option) else 1


def corrections_for(repository: InteractionRepository, *, scope: Scope, query: ParsedQuery) -> dict[str, str]:
    """For each word (and the prefix, as a whole word) found in none of the owner's interactions, its
    nearest one-edit neighbour from the owner's vocabulary; words with no neighbour stay as they are."""
    corrections: dict[str, str] = {}
    with store_errors("search"):
        present = _known(repository, scope, query.required_words)
        words = [word for word in query.required_words if word not in present]
        if query.prefix and len(query.prefix) >= MIN_CORRECTED_CHARS:
            # A prefix is still being typed: correct it only when no stored word even starts that way.
            owner = None if scope.shared else scope.owner
            if not has_prefix(repository.vocabulary, owner_query=scope.query(), owner=owner, prefix=query.prefix):
                words.append(query.prefix)
        for word in words:
            options = neighbours(repository.vocabulary, owner_query=scope.query(), word=word)
            if options:
                corrections[word] = min(options, key=lambda option: (_edit_kind(word, option), option))
    return corrections


def _missing_word(repository: InteractionRepository, scope: Scope, query: ParsedQuery) -> bool:
    """Whether some whole word is in none of the owner's interactions (from the vocabulary: SecantusDB
    materialises every match of an equality before a limit), which settles the query without a scan."""
    return bool(set(query.required_words) - _known(repository, scope, query.required_words))


def keyword_search(
    repository: InteractionRepository, *, scope: Scope, query: ParsedQuery, filters: HistoryFilter
) -> KeywordResult:
    """Ranked keyword hits; retried with typo corrections when the query as typed finds nothing."""
    with store_errors("search"):
        missing = _missing_word(repository, scope, query)
        found = [] if missing else candidates(repository, scope=scope, query=query, filters=filters)
    hits = rank(query, found[:MAX_CANDIDATES])
    corrections: dict[str, str] = {}
    if not hits and query.has_terms:
        corrections = corrections_for(repository, scope=scope, query=query)
        if corrections:
            corrected = query.with_corrections(corrections)
            with store_errors("search"):
                missing = _missing_word(repository, scope, corrected)
                found = [] if missing else candidates(repository, scope=scope, query=corrected, filters=filters)
            hits = rank(corrected, found[:MAX_CANDIDATES])
            query = corrected
            if not hits:
                corrections = {}
    return KeywordResult(hits=hits, query=query, corrections=corrections, capped=len(found) > MAX_CANDIDATES)
