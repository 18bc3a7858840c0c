"""History pages: browse and search, load more, delete/undo, delete all, export, import, claim.

Every URL renders a full page when opened directly and a fragment for htmx (``Vary: HX-Request``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from app.domain.filters import HistoryFilter
from app.errors import LOGIN_REQUIRED_TO_CLAIM, LoginRequired, StoreUnavailable
from app.forms.history import HistoryFilterForm, ImportForm, filter_form
from app.services import history, history_import, marks
from app.services.conversations import page_turn_counts
from app.services.search.service import SearchPage, history_search
from app.views._htmx import HtmxHttpRequest, htmx_action, renders_problems, vary_on_htmx
from app.views._visitor import visitor_id, visitor_scope
from app.views.api import export_download
from django_hf_ml.choices import SUPPORTED_TASKS

HISTORY = "app/history.html"
CONFIRM_DELETE_ALL = "app/history_delete_all.html"
IMPORT = "app/history_import.html"


NOTICE_KEY = "history_notice"


def _notify(request: HtmxHttpRequest, text: str) -> None:
    """A one-time notice shown on the next history page (after a redirect)."""
    request.session[NOTICE_KEY] = text


def _list_context(request: HtmxHttpRequest, form: HistoryFilterForm) -> dict[str, Any]:
    """The page of rows for valid filters, or the reasons they are not valid (status 400)."""
    context: dict[str, Any] = {"form": form, "rows": [], "next_cursor": None, "problem": None}
    if not form.is_valid():
        context["field_errors"] = form.errors_by_field()
        return context
    try:
        page = history_search(scope=visitor_scope(request), **form.search_arguments())
    except StoreUnavailable as exc:
        context["problem"] = exc.message
        return context
    context.update(
        rows=page.rows,
        next_cursor=page.next_cursor,
        query=form.filter_query(),
        search=page,
        chips=_facet_chips(form, page),
        turns=page_turn_counts(scope=visitor_scope(request), interactions=[row.interaction for row in page.rows]),
    )
    return context


def _facet_chips(form: HistoryFilterForm, page: SearchPage) -> list[dict[str, Any]]:
    """Filter chips for the facet counts: each one a link that narrows the current search."""
    text = form.data.get("q", "")
    chips: list[dict[str, Any]] = []
    for kind, values in (("model", page.facets.models), ("status", page.facets.statuses), ("tag", page.facets.tags)):
        for item in values:
            if kind == "tag":
                link = form.filter_query(q=f"{text} tag:{item.value}".strip())
            else:
                link = form.filter_query(**{kind: item.value})
            active = kind != "tag" and form.data.get(kind, "") == item.value
            chips.append(
                {"kind": kind, "value": item.value or "(none)", "count": item.count, "query": link, "active": active}
            )
    return chips


def _history_context(request: HtmxHttpRequest) -> dict[str, Any]:
    """The history page around a problem (a delete, restore or claim that failed)."""
    return _list_context(request, filter_form(request.GET))


def _status(context: dict[str, Any]) -> int:
    if context.get("field_errors"):
        return 400
    return 503 if context.get("problem") else 200


@require_GET
@vary_on_htmx
def history_page(request: HtmxHttpRequest) -> HttpResponse:
    form = filter_form(request.GET)
    context = _list_context(request, form)
    status = _status(context)
    if request.htmx and not request.htmx.history_restore_request:
        # "Load more" asks for the next rows only; a filter or search change gets the whole result block.
        partial = "rows" if form.data.get("cursor") and status == 200 else "results"
        # htmx swaps 422 (not 400) in this app, so the reason shows next to the filters.
        status = 422 if status == 400 else status
        return render(request, f"{HISTORY}#{partial}", context, status=status)
    scope = visitor_scope(request)
    context.update(
        shared=scope.shared,
        claimable=_claimable(request),
        statuses=history.STATUSES,
        tasks=SUPPORTED_TASKS,
        current_model=settings.HF_MODEL or "",
        deleted_id=request.GET.get("deleted", ""),
        notice=request.session.pop(NOTICE_KEY, ""),
    )
    context.update(_tag_options(request, form))
    return render(request, HISTORY, context, status=status)


def _tag_options(request: HtmxHttpRequest, form: HistoryFilterForm) -> dict[str, Any]:
    """The owner's tags for the tag filter (none while the store is down: the page says why elsewhere)."""
    try:
        tags = marks.owner_tags(scope=visitor_scope(request))
    except StoreUnavailable:
        tags = []
    return {"owner_tags": tags, "tag_listed": form.data.get("tag", "") in {tag for tag, _count in tags}}


def _claimable(request: HtmxHttpRequest) -> bool:
    if not request.user.is_authenticated or settings.HISTORY_SHARED:
        return False
    try:
        return history.has_unclaimed_history(session_id=visitor_id(request))
    except StoreUnavailable:
        return False


@htmx_action(HISTORY, page_context=_history_context)
def delete_interaction(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    """Soft delete: the row is replaced by an "Undo" for a few seconds (the store keeps it a while)."""
    interaction = history.delete_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    if request.htmx:
        return render(request, f"{HISTORY}#deleted-row", {"interaction": interaction})
    return HttpResponseRedirect(f"{reverse('app:history')}?deleted={interaction.id}", status=303)


@htmx_action(HISTORY, page_context=_history_context)
def restore_interaction(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    interaction = history.restore_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    if request.htmx:
        row = history.HistoryRow(interaction=interaction, prompt=[], output=[])
        return render(request, f"{HISTORY}#row", {"row": row, "restored": True})
    return HttpResponseRedirect(reverse("app:history"), status=303)


@require_http_methods(["GET", "POST"])
def delete_all(request: HtmxHttpRequest) -> HttpResponse:
    """GET asks for confirmation; POST with ``confirm=yes`` deletes every interaction of this history."""
    scope = visitor_scope(request)
    if request.method == "GET" or request.POST.get("confirm") != "yes":
        status = 200 if request.method == "GET" else 400
        return render(request, CONFIRM_DELETE_ALL, {"shared": scope.shared}, status=status)
    try:
        deleted = history.delete_history(scope=scope)
    except StoreUnavailable as exc:
        return render(request, CONFIRM_DELETE_ALL, {"shared": scope.shared, "problem": exc.message}, status=503)
    _notify(request, f"Deleted {deleted} interaction{'' if deleted == 1 else 's'}.")
    return HttpResponseRedirect(reverse("app:history"), status=303)


def _export_filters(request: HtmxHttpRequest) -> HistoryFilter | HttpResponse:
    form = filter_form(request.GET)
    if not form.is_valid():
        context = _list_context(request, form)
        return render(request, HISTORY, context, status=400)
    return form.to_filter()


@require_GET
def export(request: HtmxHttpRequest, fmt: str) -> HttpResponseBase:
    """``/history/export.jsonl`` and ``.csv``; invalid filters show the page with their reasons (400)."""
    filters = _export_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    return export_download(visitor_scope(request), filters, fmt)


@require_http_methods(["GET", "POST"])
def import_history(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, IMPORT, {"form": ImportForm()})
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, IMPORT, {"form": form}, status=400)
    try:
        report = history_import.import_jsonl(form.cleaned_data["file"], scope=visitor_scope(request))
    except StoreUnavailable as exc:
        return render(request, IMPORT, {"form": ImportForm(), "problem": exc.message}, status=503)
    return render(request, IMPORT, {"form": ImportForm(), "report": report})


@require_POST
@renders_problems(HISTORY, page_context=_history_context)
def claim(request: HtmxHttpRequest) -> HttpResponse:
    """Move the interactions this browser made before logging in to the logged-in user."""
    if not request.user.is_authenticated:
        raise LoginRequired(LOGIN_REQUIRED_TO_CLAIM)
    moved = history.claim_history(session_id=visitor_id(request), user_id=str(request.user.pk))
    _notify(request, f"Moved {moved} interaction{'' if moved == 1 else 's'} to your account.")
    return HttpResponseRedirect(reverse("app:history"), status=303)
