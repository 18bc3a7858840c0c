"""One prompt sent to 2–3 offered models at once: N ordinary durable streams sharing a ``comparison_id``.

Each answer is a normal record (write-ahead, checkpoints, Stop, history, search) that also carries the
comparison's id, so the comparison is simply "the visitor's records with that id". The rate limit counts
the N prompts at once, before anything starts: with fewer left the whole comparison is refused (429) and
nothing is stored. A start that fails half-way (a full queue) stops the answers already started and
raises the error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.generation import Ask
from app.domain.ids import is_interaction_id, new_interaction_id
from app.domain.interaction import Interaction, Scope
from app.errors import COMPARISON_NOT_FOUND, DomainError, InteractionNotFound, StreamNotFound
from app.services.generation import Stream, start_stream, stop_stream
from app.services.mongo_comparisons import comparison_answers
from app.services.mongo_repo import get_repository
from app.services.rate_limit import check_rate_limit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comparison:
    """A comparison just started: its id and one stream per model, in the order the models were picked."""

    id: str
    streams: tuple[Stream, ...]

    def wait(self, timeout: float | None = None) -> None:
        """Block until every answer has ended (the page without JavaScript)."""
        for stream in self.streams:
            stream.attached = True
            stream.ended.wait(timeout)


def start_comparison(ask: Ask, models: Sequence[str], scope: Scope) -> Comparison:
    """Start one stream per model with ``ask``'s prompt and parameters; every record gets the same id."""
    comparison_id = new_interaction_id()
    check_rate_limit(scope.owner, prompts=len(models))
    streams: list[Stream] = []
    try:
        for model in models:
            one = dataclasses.replace(ask, model=model, comparison_id=comparison_id, rate_counted=True)
            streams.append(start_stream(one, scope))
    except DomainError:
        logger.info("Comparison %s refused after %d of %d answers started", comparison_id, len(streams), len(models))
        for stream in streams:
            _stop_quietly(stream.id, scope)
        raise
    logger.info("Comparison %s started: %s", comparison_id, ", ".join(models))
    return Comparison(id=comparison_id, streams=tuple(streams))


def get_comparison(*, scope: Scope, comparison_id: str) -> list[Interaction]:
    """The visitor's answers of that comparison; ``InteractionNotFound`` (404) when there are none."""
    if not is_interaction_id(comparison_id):
        raise InteractionNotFound(COMPARISON_NOT_FOUND)
    answers = comparison_answers(get_repository(), scope=scope, comparison_id=comparison_id.lower())
    if not answers:
        raise InteractionNotFound(COMPARISON_NOT_FOUND)
    return answers


def stop_comparison(*, scope: Scope, comparison_id: str) -> list[Interaction]:
    """Stop every answer of the comparison that is still generating (from any process)."""
    answers = get_comparison(scope=scope, comparison_id=comparison_id)
    for answer in answers:
        if answer.pending:
            _stop_quietly(answer.id, scope)
    return answers


def _stop_quietly(stream_id: str, scope: Scope) -> None:
    with contextlib.suppress(StreamNotFound):  # over already
        stop_stream(stream_id, scope, wait_seconds=0.0)
