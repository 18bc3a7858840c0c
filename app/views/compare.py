"""Compare and diff: one prompt to 2–3 models side by side, a stored comparison, a word diff of two answers.

``/compare/`` posts the prompt and the picked models; with htmx the answer is one streaming column per
model (each its own SSE feed, ``/compare/stream/<id>/events``, the same feeds as the prompt page but
whose end renders a column), without JavaScript the post waits for every answer and redirects to the
stored comparison ``/compare/<comparison_id>/``. ``/diff/?a=<id>&b=<id>`` (or ``?pick=<id>&pick=<id>``
from the history's checkboxes) shows the word diff of two of the visitor's answers.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url, reswap, retarget

from app.domain.diff import word_diff
from app.domain.generation import Ask
from app.domain.interaction import Interaction
from app.errors import InteractionNotFound, StoreUnavailable, StreamNotFound
from app.forms.compare import CompareForm, parse_diff_query
from app.forms.feed import resume_offset
from app.services.comparisons import Comparison, get_comparison, start_comparison, stop_comparison
from app.services.interactions import get_interaction, recent_interactions
from app.services.stream_follow import FeedEvent, RunningAnswer, answer_for_page, follow, running
from app.views._htmx import HtmxHttpRequest, renders_problems, vary_on_htmx
from app.views._visitor import visitor_scope
from app.views.stream import KEEPALIVE_SECONDS, relay

COMPARE = "app/compare.html"
COMPARISON = "app/comparison.html"
DIFF = "app/diff.html"
DIFF_PICK = "app/diff_pick.html"
PICK_CANDIDATES = 20


def _compare_context(request: HtmxHttpRequest) -> dict[str, Any]:
    """The compare page around a problem: the form as it was sent, so nothing typed is lost."""
    return {"form": CompareForm(request.POST or None)}


@require_http_methods(["GET", "POST"])
@vary_on_htmx
@renders_problems(COMPARE, page_context=_compare_context)
def compare(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, COMPARE, {"form": CompareForm()})
    form = CompareForm(request.POST)
    if not form.is_valid():
        return _invalid_form(request, form)
    ask = Ask(prompt=form.cleaned_data["prompt"], params=form.cleaned_data["params"])
    comparison = start_comparison(ask, form.cleaned_data["models"], visitor_scope(request))
    url = reverse("app:comparison", args=[comparison.id])
    if not request.htmx:  # no JavaScript: wait for every answer, then show the stored comparison
        comparison.wait()
        return HttpResponseRedirect(url, status=303)
    response = render(request, f"{COMPARE}#comparison", _live_context(comparison, ask.prompt))
    return push_url(response, url)


@require_GET
@vary_on_htmx
@renders_problems(COMPARISON)
def comparison_detail(request: HtmxHttpRequest, comparison_id: str) -> HttpResponse:
    scope = visitor_scope(request)
    answers = get_comparison(scope=scope, comparison_id=comparison_id)
    columns = [_stored_column(request, answer) for answer in answers]
    return render(request, COMPARISON, _comparison_context(answers[0].comparison_id or "", answers[0].prompt, columns))


@require_POST
@vary_on_htmx
@renders_problems(COMPARISON)
def compare_stop(request: HtmxHttpRequest, comparison_id: str) -> HttpResponse:
    """Stop every answer of the comparison still generating; each keeps its text as ``cancelled``."""
    answers = stop_comparison(scope=visitor_scope(request), comparison_id=comparison_id)
    if request.htmx:
        return HttpResponse(status=204)  # each column's feed delivers its own end
    return HttpResponseRedirect(reverse("app:comparison", args=[answers[0].comparison_id]), status=303)


@require_GET
async def compare_events(request: HtmxHttpRequest, stream_id: str) -> HttpResponseBase:
    """One column's SSE feed: like the prompt page's, but its ``done`` is the column of the stored answer."""
    scope = await sync_to_async(visitor_scope)(request)
    feed = follow(stream_id, scope, offset=resume_offset(request), keepalive=KEEPALIVE_SECONDS)
    response = StreamingHttpResponse(relay(request, feed, _render_end), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@require_GET
@renders_problems(DIFF)
def diff(request: HtmxHttpRequest) -> HttpResponse:
    pair = parse_diff_query(request.GET)
    scope = visitor_scope(request)
    first = get_interaction(scope=scope, interaction_id=pair.a)
    second = get_interaction(scope=scope, interaction_id=pair.b)
    result = word_diff(first.output, second.output)
    side_by_side = request.GET.get("view") == "side"
    context = {
        "a": first,
        "b": second,
        "sides": [("a", first), ("b", second)],
        "diff": result,
        "side_by_side": side_by_side,
    }
    return render(request, DIFF, context)


@require_GET
@renders_problems(DIFF_PICK)
def diff_pick(request: HtmxHttpRequest) -> HttpResponse:
    """ "Diff with…" from an answer's page: the visitor's recent answers, each a link to the diff."""
    scope = visitor_scope(request)
    pair_id = request.GET.get("a", "").strip()
    first = get_interaction(scope=scope, interaction_id=pair_id)
    others = [item for item in recent_interactions(scope=scope, limit=PICK_CANDIDATES + 1).items if item.id != first.id]
    return render(request, DIFF_PICK, {"a": first, "others": others[:PICK_CANDIDATES]})


# --- helpers -----------------------------------------------------------------------------------


def _invalid_form(request: HtmxHttpRequest, form: CompareForm) -> HttpResponse:
    """422 with the form and its field messages (htmx: swapped in place of the form)."""
    if request.htmx:
        response = render(request, f"{COMPARE}#compare-form", {"form": form}, status=422)
        return reswap(retarget(response, "#compare-form"), "outerHTML")
    return render(request, COMPARE, {"form": form}, status=422)


def _live_context(comparison: Comparison, prompt: str) -> dict[str, Any]:
    columns: list[dict[str, Any]] = []
    for stream in comparison.streams:
        if stream.finished and stream.interaction is not None:  # answered from the cache
            columns.append(_column(stream.interaction))
        else:
            columns.append({"id": stream.id, "model": stream.model, "answer": None, "feed": running(stream)})
    return _comparison_context(comparison.id, prompt, columns)


def _comparison_context(comparison_id: str, prompt: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns side by side, and a "Diff these two" link for every pair of them."""
    pairs = [(first, second) for index, first in enumerate(columns) for second in columns[index + 1 :]]
    return {
        "comparison_id": comparison_id,
        "prompt": prompt,
        "columns": columns,
        "pairs": pairs,
        "running": any(column["feed"] is not None for column in columns),
    }


def _column(answer: Interaction) -> dict[str, Any]:
    return {"id": answer.id, "model": answer.model, "answer": answer, "feed": None}


def _stored_column(request: HtmxHttpRequest, answer: Interaction) -> dict[str, Any]:
    """A stored answer's column; one still generating keeps streaming from its text so far."""
    if not answer.pending:
        return _column(answer)
    try:
        found: Interaction | RunningAnswer = answer_for_page(scope=visitor_scope(request), answer_id=answer.id)
    except (InteractionNotFound, StoreUnavailable):
        found = answer
    if isinstance(found, RunningAnswer):
        return {"id": answer.id, "model": answer.model, "answer": None, "feed": found}
    return _column(found)


def _render_end(request: HtmxHttpRequest, event: FeedEvent) -> str:
    if event.interaction is None:
        context: dict[str, Any] = {"problem": event.problem or StreamNotFound().message}
        return render_to_string(f"{COMPARE}#problem", context, request).strip()
    context = {"column": _column(event.interaction), "save_error": event.save_error}
    return render_to_string(f"{COMPARE}#column", context, request).strip()
