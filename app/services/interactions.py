"""Use cases that join the model and the store: answer a prompt and keep the record."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from app.errors import PROMPT_EMPTY, PROMPT_TOO_LONG, InvalidPrompt, ModelUnavailable
from app.services.mongo_repo import STATUS_ERROR, Interaction, Page, Scope, get_repository
from app.services.nlp_service import GenerationParams, GenerationResult, default_service

logger = logging.getLogger(__name__)


def clean_prompt(text: str) -> str:
    """The prompt as it will be sent to the model, or ``InvalidPrompt`` with the reason."""
    if not text.strip():
        raise InvalidPrompt(PROMPT_EMPTY)
    limit = settings.PROMPT_MAX_CHARS
    if len(text) > limit:
        raise InvalidPrompt(PROMPT_TOO_LONG.format(limit=limit))
    return text.strip()


def answer_prompt(*, prompt: str, params: GenerationParams, scope: Scope) -> Interaction:
    """Generate an answer and store the interaction; a model failure is stored too, then raised."""
    service = default_service()
    started = time.perf_counter()
    try:
        result = service.generate(prompt, params)
    except ModelUnavailable as exc:
        _record_failure(prompt=prompt, params=params, scope=scope, model=service.model, task=service.task, error=exc)
        raise
    interaction = interaction_from_result(result, prompt=prompt, params=params, scope=scope)
    store_interaction(interaction)
    interaction.durations_ms["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return interaction


def store_interaction(interaction: Interaction) -> None:
    """The one way an interaction is written: every caller (form, API, stream) goes through here."""
    get_repository().insert(interaction)


def interaction_from_result(
    result: GenerationResult, *, prompt: str, params: GenerationParams, scope: Scope
) -> Interaction:
    return Interaction(
        prompt=prompt,
        output=result.text,
        model=result.model,
        task=result.task,
        session_id=scope.session_id,
        params=params.to_dict(),
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        durations_ms={
            "load_ms": round(result.load_seconds * 1000, 1),
            "generate_ms": round(result.generate_seconds * 1000, 1),
            "model_total_ms": round(result.total_seconds * 1000, 1),
        },
    )


def _record_failure(
    *, prompt: str, params: GenerationParams, scope: Scope, model: str, task: str, error: ModelUnavailable
) -> None:
    """Keep what the visitor submitted even when the model could not answer (best effort)."""
    failed = Interaction(
        prompt=prompt,
        output="",
        model=model,
        task=task,
        session_id=scope.session_id,
        params=params.to_dict(),
        status=STATUS_ERROR,
        error=error.message,
    )
    try:
        store_interaction(failed)
    except Exception:
        logger.exception("Could not record the failed interaction for model %s", model)


def recent_interactions(*, scope: Scope, limit: int) -> Page:
    return get_repository().page(scope=scope, limit=limit)


def get_interaction(*, scope: Scope, interaction_id: str) -> Interaction:
    return get_repository().get(interaction_id, scope=scope)
