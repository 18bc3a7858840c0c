"""Our JSON API: generate, read, list/search, delete, export.

* ``POST /api/generate`` ``{"prompt", "params", "model"}`` → 201 with the interaction.
* ``GET|DELETE /api/interactions/<id>``;
  ``GET /api/interactions?q=&model=&task=&status=&since=&until=&sort=&mode=&cursor=&limit=``
  → ``{"items": [...], "next_cursor": "…" | null}`` plus a ``"search"`` block (mode, sort, "showing results
  for", notes, facets) when ``q`` has text to rank; ``GET /api/interactions/export.jsonl|.csv``.

Views raise domain errors and ``app.middleware.DomainErrorJsonMiddleware`` answers
``{"error": message, "fields": {...}}`` with the error's status (400, 404, 422, 429 + Retry-After,
503); 401/403/405/415 come from authentication, CSRF, method checks and ``json_body`` — never an
HTML error page for bad input. A request authenticates with the session plus CSRF token or with a
bearer token (``app.middleware.ApiAuthMiddleware``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from app.domain.filters import HistoryFilter
from app.domain.interaction import Interaction, Scope
from app.errors import HISTORY_BAD_FILTERS, InvalidFilters
from app.forms.history import HistoryApiForm, HistoryFilterForm, filter_form
from app.forms.prompt import parse_api_prompt
from app.middleware import json_error
from app.services import history
from app.services.generation import answer_blocking
from app.services.interactions import get_interaction
from app.services.search.service import history_search
from app.views._visitor import visitor_scope

JSON_REQUIRED = "Send the request body as JSON with Content-Type: application/json."
JSON_MALFORMED = "The request body is not valid JSON."
JSON_NOT_OBJECT = 'The request body must be a JSON object such as {"prompt": "…", "params": {}}.'


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
        # Calls through the OpenAI-compatible API: "api" and the key's name, else null.
        "source": interaction.source,
        "api_key": interaction.api_key,
        "messages": interaction.messages,
        "starred": interaction.starred,
        "tags": list(interaction.tags),
    }


def json_body(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    """The decoded JSON object, or the 415/400 response that says what is wrong with the body."""
    if request.content_type != "application/json":
        return json_error(JSON_REQUIRED, 415)
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return json_error(JSON_MALFORMED, 400)
    if not isinstance(payload, dict):
        return json_error(JSON_NOT_OBJECT, 400)
    return payload


def streamed(lines: Iterator[str], *, content_type: str, filename: str) -> StreamingHttpResponse:
    """A download written as it is read (an export never holds the whole history in memory)."""
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _valid_filters(form: HistoryFilterForm) -> None:
    if not form.is_valid():
        fields = form.errors_by_field()
        message = next(iter(fields.values())) if len(fields) == 1 else HISTORY_BAD_FILTERS
        raise InvalidFilters(fields, message)


@require_POST
def generate(request: HttpRequest) -> JsonResponse:
    payload = json_body(request)
    if isinstance(payload, JsonResponse):
        return payload
    interaction = answer_blocking(parse_api_prompt(payload), visitor_scope(request))
    return JsonResponse(interaction_json(interaction), status=201)


@require_http_methods(["GET", "DELETE"])
def interaction(request: HttpRequest, interaction_id: str) -> HttpResponse:
    """GET one interaction; DELETE → 204 (soft delete); another visitor's id (or an unknown one) → 404."""
    scope = visitor_scope(request)
    if request.method == "DELETE":
        history.delete_interaction(scope=scope, interaction_id=interaction_id)
        return HttpResponse(status=204)
    return JsonResponse(interaction_json(get_interaction(scope=scope, interaction_id=interaction_id)))


@require_GET
def list_interactions(request: HttpRequest) -> JsonResponse:
    form = filter_form(request.GET, api=True)
    _valid_filters(form)
    assert isinstance(form, HistoryApiForm)
    page = history_search(scope=visitor_scope(request), limit=form.cleaned_data["limit"], **form.search_arguments())
    body: dict[str, Any] = {"items": [interaction_json(item) for item in page.items], "next_cursor": page.next_cursor}
    if page.ranked:
        body["search"] = {
            "mode": page.mode,
            "sort": page.sort,
            "showing_results_for": page.showing_for,
            "notes": list(page.notes),
            "facets": page.facets.as_json(),
        }
    elif page.notes:
        body["search"] = {"notes": list(page.notes)}
    return JsonResponse(body)


EXPORTS = {
    "jsonl": (history.export_jsonl, "application/x-ndjson; charset=utf-8", "history.jsonl"),
    "csv": (history.export_csv, "text/csv; charset=utf-8", "history.csv"),
}


def export_download(scope: Scope, filters: HistoryFilter, fmt: str) -> StreamingHttpResponse:
    """The visitor's (filtered) history as a streamed JSON Lines or CSV download."""
    write, content_type, filename = EXPORTS[fmt]
    return streamed(write(scope=scope, filters=filters), content_type=content_type, filename=filename)


@require_GET
def export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """``/api/interactions/export.jsonl`` and ``.csv`` (``fmt`` comes from the URL pattern)."""
    form = filter_form(request.GET)
    _valid_filters(form)
    return export_download(visitor_scope(request), form.to_filter(), fmt)
