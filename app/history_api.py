"""History API: list/search with a cursor, delete one, export.

``GET /api/interactions?q=&model=&task=&status=&since=&until=&cursor=&limit=`` →
``{"items": [...], "next_cursor": "…" | null}``. Bad input is a 400 ``{"error", "fields"}``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from app.api import error_response, interaction_json
from app.errors import HISTORY_BAD_FILTERS, InteractionNotFound, StoreUnavailable
from app.history_forms import HistoryApiForm, HistoryFilterForm, filter_form
from app.history_views import streamed
from app.services import history
from app.services.mongo_repo import get_repository
from app.visitor import visitor_scope


def _bad_filters(form: HistoryFilterForm) -> JsonResponse:
    fields = form.errors_by_field()
    message = next(iter(fields.values())) if len(fields) == 1 else HISTORY_BAD_FILTERS
    return error_response(message, 400, fields=fields)


@require_GET
def list_interactions(request: HttpRequest) -> JsonResponse:
    form = filter_form(request.GET, api=True)
    if not form.is_valid():
        return _bad_filters(form)
    assert isinstance(form, HistoryApiForm)
    try:
        page = get_repository().page(
            scope=visitor_scope(request),
            cursor=form.page_cursor(),
            limit=form.cleaned_data["limit"],
            filters=form.to_filter(),
        )
    except StoreUnavailable as exc:
        return error_response(exc.message, 503)
    return JsonResponse({"items": [interaction_json(item) for item in page.items], "next_cursor": page.next_cursor})


def delete_interaction(request: HttpRequest, interaction_id: str) -> HttpResponse:
    """``DELETE /api/interactions/<id>`` → 204; another visitor's id (or an unknown one) → 404."""
    try:
        history.delete_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    except InteractionNotFound as exc:
        return error_response(exc.message, 404)
    except StoreUnavailable as exc:
        return error_response(exc.message, 503)
    return HttpResponse(status=204)


@require_GET
def export_jsonl(request: HttpRequest) -> HttpResponse:
    form = filter_form(request.GET)
    if not form.is_valid():
        return _bad_filters(form)
    lines = history.export_jsonl(scope=visitor_scope(request), filters=form.to_filter())
    return streamed(lines, content_type="application/x-ndjson; charset=utf-8", filename="history.jsonl")


@require_GET
def export_csv(request: HttpRequest) -> HttpResponse:
    form = filter_form(request.GET)
    if not form.is_valid():
        return _bad_filters(form)
    lines = history.export_csv(scope=visitor_scope(request), filters=form.to_filter())
    return streamed(lines, content_type="text/csv; charset=utf-8", filename="history.csv")
