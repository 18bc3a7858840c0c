"""Deterministic requests answered from a cache instead of the model.

A request is deterministic when it does not sample (greedy or beam search): the same model, task,
decoding settings and prompt always give the same answer. Its ``cache_key`` is a hash of exactly
those. Answers are looked up first in an in-process LRU (``ANSWER_CACHE_SIZE`` entries), then in
MongoDB (an earlier ``ok`` interaction of the same visitor with the same ``cache_key``; an indexed
equality lookup). The new record is stored with ``cached: true`` and ``cached_from``.

Keys include the visitor: a cache shared across visitors would tell one visitor (through
``cached: true`` and the speed) that someone else had asked exactly the same prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from app.domain.generation import GenerationParams
from app.domain.interaction import Interaction, Scope
from app.errors import StoreUnavailable
from app.services.mongo_repo import get_repository
from app.services.per_process import PerProcess

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedAnswer:
    """What a cached answer needs to become a new record."""

    output: str
    prompt_tokens: int
    output_tokens: int
    source_id: str


def cache_key(*, model: str, task: str, params: GenerationParams, prompt: str) -> str | None:
    """The key of a deterministic request, or None when it samples (never cached)."""
    if params.do_sample:
        return None
    material = json.dumps(
        {"model": model, "task": task, "generate": params.generate_kwargs(), "prompt": prompt},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class AnswerCache:
    """A thread-safe LRU of ``(owner, key) → CachedAnswer``; ``size == 0`` disables it."""

    def __init__(self, *, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: str, key: str) -> CachedAnswer | None:
        with self._lock:
            found = self._entries.get((owner, key))
            if found is not None:
                self._entries.move_to_end((owner, key))
            return found

    def put(self, owner: str, key: str, answer: CachedAnswer) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[(owner, key)] = answer
            self._entries.move_to_end((owner, key))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# Rebuilt (empty) when ANSWER_CACHE_SIZE changes.
_cache = PerProcess(lambda: AnswerCache(size=settings.ANSWER_CACHE_SIZE), key=lambda: settings.ANSWER_CACHE_SIZE)
get_cache = _cache.get
reset_cache = _cache.reset  # forget every cached answer (tests)


def lookup(*, scope: Scope, key: str | None) -> CachedAnswer | None:
    """A cached answer for this visitor and key: memory first, then the store (best effort)."""
    cache = get_cache()
    if key is None or cache.size <= 0:
        return None
    found = cache.get(scope.owner, key)
    if found is not None:
        return found
    try:
        earlier = get_repository().find_cached(scope=scope, cache_key=key)
    except StoreUnavailable:
        return None  # the store being down must not stop the model from answering
    if earlier is None:
        return None
    found = CachedAnswer(
        output=earlier.output,
        prompt_tokens=earlier.prompt_tokens,
        output_tokens=earlier.output_tokens,
        source_id=earlier.id,
    )
    cache.put(scope.owner, key, found)
    return found


def remember(*, scope: Scope, interaction: Interaction) -> None:
    """Keep a finished, complete deterministic answer for the next identical request."""
    if interaction.cache_key is None or interaction.status != "ok":
        return
    answer = CachedAnswer(
        output=interaction.output,
        prompt_tokens=interaction.prompt_tokens,
        output_tokens=interaction.output_tokens,
        source_id=interaction.id,
    )
    get_cache().put(scope.owner, interaction.cache_key, answer)
