"""JSON API: ``POST /api/generate`` and ``GET /api/interactions/<id>``.

Errors are ``{"error": message}`` (plus ``"fields"`` for parameter errors) with 400, 401, 403 (CSRF),
404, 405, 415, 422 or 503 — never an HTML error page for bad input. A request authenticates with the
session plus CSRF token or with a bearer token (``app/api_auth.py``).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods, require_POST

from app.domain.interaction import Interaction
from app.errors import (
    InteractionNotFound,
    InvalidParams,
    InvalidPrompt,
    ModelUnavailable,
    StoreUnavailable,
    TooManyRequests,
)
from app.forms import parse_api_prompt
from app.services.interactions import answer_prompt, get_interaction
from app.visitor import visitor_scope

JSON_REQUIRED = "Send the request body as JSON with Content-Type: application/json."
JSON_MALFORMED = "The request body is not valid JSON."
JSON_NOT_OBJECT = 'The request body must be a JSON object such as {"prompt": "…", "params": {}}.'


def error_response(message: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def interaction_json(interaction: Interaction) -> dict[str, Any]:
    return {
        "id": interaction.id,
        "prompt": interaction.prompt,
        "output": interaction.output,
        "model": interaction.model,
        "task": interaction.task,
        "params": interaction.params,
        "status": interaction.status,
        "error": interaction.error,
        "created_at": interaction.created_at.isoformat().replace("+00:00", "Z"),
        "tokens": {"prompt": interaction.prompt_tokens, "output": interaction.output_tokens},
        "timings_ms": interaction.durations_ms,
        "cached": interaction.cached,
        "regenerated_from": interaction.regenerated_from,
    }


def _json_body(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    if request.content_type != "application/json":
        return error_response(JSON_REQUIRED, 415)
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return error_response(JSON_MALFORMED, 400)
    if not isinstance(payload, dict):
        return error_response(JSON_NOT_OBJECT, 400)
    return payload


# Authentication (see app/api_auth.py): the session with an ``X-CSRFToken`` header (enforced by
# Django's CSRF middleware, a failure is a 403 JSON error), or ``Authorization: Bearer <token>``.
@require_POST
def generate(request: HttpRequest) -> JsonResponse:
    payload = _json_body(request)
    if isinstance(payload, JsonResponse):
        return payload
    try:
        prompt_input = parse_api_prompt(payload)
        interaction = answer_prompt(
            prompt=prompt_input.prompt,
            params=prompt_input.params,
            scope=visitor_scope(request),
            model=prompt_input.model,
        )
    except TooManyRequests as exc:
        response = error_response(exc.message, 429, retry_after=exc.retry_after)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except InvalidParams as exc:
        return error_response(exc.message, 422, fields=exc.errors)
    except InvalidPrompt as exc:
        return error_response(exc.message, 422, fields={"prompt": exc.message})
    except (ModelUnavailable, StoreUnavailable) as exc:
        return error_response(exc.message, 503)
    return JsonResponse(interaction_json(interaction), status=201)


@require_http_methods(["GET", "DELETE"])
def interaction(request: HttpRequest, interaction_id: str) -> HttpResponse:
    if request.method == "DELETE":  # history API (app/history_api.py): soft delete, 204
        from app.history_api import delete_interaction

        return delete_interaction(request, interaction_id)
    try:
        found = get_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    except InteractionNotFound as exc:
        return error_response(exc.message, 404)
    except StoreUnavailable as exc:
        return error_response(exc.message, 503)
    return JsonResponse(interaction_json(found))
