"""Relevance of one interaction to a parsed query, and reciprocal rank fusion (pure functions).

An interaction matches when every word is among its words (the last, still typed, may be a prefix),
every phrase appears as consecutive words in the prompt or the answer, and no excluded word or
phrase appears. Matches are ordered by, in turn:

1. how many of the query's terms (words, phrases, the prefix) appear in the prompt;
2. how many appear anywhere (with typo-corrected or partial matches, not all do);
3. how close together the terms are (the shortest stretch of words holding all of them);
4. how often they occur (capped), then the newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.domain.search import tokenize
from app.services.search.query import ParsedQuery

RRF_K = 60
MAX_OCCURRENCES_COUNTED = 10


@dataclass(frozen=True)
class Relevance:
    prompt_terms: int
    terms: int
    closeness: float
    occurrences: int
    created_at: datetime

    def key(self) -> tuple[int, int, float, int, datetime]:
        return (self.prompt_terms, self.terms, self.closeness, self.occurrences, self.created_at)


def _contains_phrase(tokens: Sequence[str], phrase: Sequence[str]) -> list[int]:
    """Start positions of ``phrase`` in ``tokens``."""
    size = len(phrase)
    first = phrase[0]
    return [i for i, token in enumerate(tokens) if token == first and list(tokens[i : i + size]) == list(phrase)]


def _term_positions(tokens: Sequence[str], query: ParsedQuery) -> list[list[int]]:
    """For each query term, where it occurs in ``tokens`` (an empty list when it does not)."""
    positions: list[list[int]] = []
    for word in query.words:
        positions.append([i for i, token in enumerate(tokens) if token == word])
    for phrase in query.phrases:
        positions.append(_contains_phrase(tokens, phrase))
    if query.prefix:
        positions.append([i for i, token in enumerate(tokens) if token.startswith(query.prefix)])
    return positions


def _shortest_span(positions: list[list[int]]) -> int:
    """Length of the shortest stretch of words that holds one occurrence of every term (all present)."""
    events = sorted((pos, term) for term, where in enumerate(positions) for pos in where)
    need = len(positions)
    counts = [0] * need
    covered = 0
    best = len(events) + 10**6
    left = 0
    for pos, term in events:
        counts[term] += 1
        if counts[term] == 1:
            covered += 1
        while covered == need:
            start, start_term = events[left]
            best = min(best, pos - start + 1)
            counts[start_term] -= 1
            if counts[start_term] == 0:
                covered -= 1
            left += 1
    return best


def _closeness(positions: list[list[int]]) -> float:
    present = [where for where in positions if where]
    if len(present) <= 1:
        return 1.0 if present else 0.0
    return len(present) / _shortest_span(present)


def excluded(query: ParsedQuery, prompt_tokens: Sequence[str], output_tokens: Sequence[str]) -> bool:
    words = set(prompt_tokens) | set(output_tokens)
    if any(word in words for word in query.excluded):
        return True
    return any(
        _contains_phrase(prompt_tokens, phrase) or _contains_phrase(output_tokens, phrase)
        for phrase in query.excluded_phrases
    )


def relevance(query: ParsedQuery, *, prompt: str, output: str, created_at: datetime) -> Relevance | None:
    """How well an interaction matches ``query`` (``None``: it does not match at all)."""
    prompt_tokens = tokenize(prompt)
    output_tokens = tokenize(output)
    if excluded(query, prompt_tokens, output_tokens):
        return None
    in_prompt = _term_positions(prompt_tokens, query)
    in_output = _term_positions(output_tokens, query)
    present = [bool(p) or bool(o) for p, o in zip(in_prompt, in_output, strict=True)]
    if not all(present):
        return None
    prompt_terms = sum(bool(p) for p in in_prompt)
    closeness = max(_closeness(in_prompt), _closeness(in_output)) if in_prompt else 1.0
    occurrences = sum(min(len(p) + len(o), MAX_OCCURRENCES_COUNTED) for p, o in zip(in_prompt, in_output, strict=True))
    return Relevance(
        prompt_terms=prompt_terms,
        terms=sum(present),
        closeness=closeness,
        occurrences=occurrences,
        created_at=created_at,
    )


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[str]:
    """Ids ordered by the sum of ``weight / (k + rank)`` over the rankings they appear in (rank from 1).

    Ties keep the order of first appearance (so the first ranking breaks them).
    """
    scores: dict[str, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: n for n, item in enumerate(scores)}
    return sorted(scores, key=lambda item: (-scores[item], order[item]))
