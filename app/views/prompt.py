"""The prompt page: the form, the visitor's recent answers, one answer's detail.

Without JavaScript the form posts to ``/prompt/`` and waits for the whole answer; with htmx it posts
to ``/stream/`` instead (``app.views.stream``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import reswap, retarget

from app.domain.generation import Ask
from app.domain.ids import is_interaction_id
from app.domain.interaction import Interaction
from app.errors import FOLLOW_UP_NOT_FOUND, InteractionNotFound, StoreUnavailable
from app.forms.prompt import PromptForm, initial_from_interaction
from app.services.conversations import thread_ask
from app.services.generation import answer_blocking
from app.services.interactions import get_interaction, recent_interactions
from app.services.stream_follow import RunningAnswer, answer_for_page
from app.views._htmx import HtmxHttpRequest, htmx_action, page_or_fragment, renders_problems, vary_on_htmx
from app.views._visitor import visitor_scope

INDEX = "app/index.html"
DETAIL = "app/interaction_detail.html"


def index_context(request: HtmxHttpRequest, form: PromptForm | None = None, **extra: Any) -> dict[str, Any]:
    """What the full prompt page shows: the form and the recent answers (or why they are missing)."""
    try:
        page = recent_interactions(scope=visitor_scope(request), limit=settings.RECENT_INTERACTIONS)
        recent, store_error = page.items, None
    except StoreUnavailable as exc:
        recent, store_error = [], exc.message
    return {"form": form or PromptForm(), "recent": recent, "store_error": store_error, **extra}


def submitted_form_context(request: HtmxHttpRequest) -> dict[str, Any]:
    """The page around a problem: the form as it was submitted, so nothing typed is lost."""
    form = PromptForm(request.POST or None)
    return index_context(request, form, **form_marker(form))


def thread_marker(kind: str, turn_id: str, prompt: str = "") -> dict[str, str]:
    """What the "Follow-up to …" marker in the form shows: ``follow`` (after) or ``edit`` (beside) a turn."""
    return {"thread_kind": kind, "thread_id": turn_id, "thread_prompt": prompt}


def form_marker(form: PromptForm) -> dict[str, str]:
    """The marker of a submitted form, kept when it comes back with its messages (422)."""
    for kind, name in (("follow", "parent_id"), ("edit", "sibling_of")):
        value = str(form.data.get(name) or "").strip()
        if value:
            return thread_marker(kind, value)
    return {}


def invalid_prompt_form(request: HtmxHttpRequest, form: PromptForm) -> HttpResponse:
    """422 with the form and its field messages (htmx: swapped in place of the form)."""
    if request.htmx:
        response = render(request, f"{INDEX}#prompt-form", {"form": form, **form_marker(form)}, status=422)
        return reswap(retarget(response, "#prompt-form"), "outerHTML")
    return render(request, INDEX, index_context(request, form, **form_marker(form)), status=422)


@require_GET
@vary_on_htmx
def index(request: HtmxHttpRequest) -> HttpResponse:
    found: Interaction | RunningAnswer | None = None
    answer_id = request.GET.get("answer", "")
    if answer_id:
        try:
            found = answer_for_page(scope=visitor_scope(request), answer_id=answer_id)
        except (InteractionNotFound, StoreUnavailable):
            found = None
    if isinstance(found, RunningAnswer):  # still generating (a reload, a second tab): show it and keep streaming
        return render(request, INDEX, index_context(request, feed=found))
    answer = found
    # An answer's prompt, parameters and model fill the form again: change a parameter and send it anew
    # (a new version of that turn of its conversation).
    form = PromptForm(initial=initial_from_interaction(answer.prompt, answer.params, answer.model) if answer else None)
    marker = thread_marker("edit", answer.id, answer.prompt) if answer else {}
    follow_id = request.GET.get("follow", "")
    if follow_id and not answer:
        return _follow_up_page(request, follow_id)
    return render(request, INDEX, index_context(request, form, answer=answer, **marker))


def _follow_up_page(request: HtmxHttpRequest, follow_id: str) -> HttpResponse:
    """``/?follow=<id>``: an empty form that continues the conversation after that answer (404 if not yours)."""
    try:
        turn = (
            get_interaction(scope=visitor_scope(request), interaction_id=follow_id)
            if is_interaction_id(follow_id)
            else None
        )
    except InteractionNotFound:
        turn = None
    except StoreUnavailable as exc:
        return render(request, INDEX, index_context(request, problem=exc.message), status=503)
    if turn is None:
        return render(request, INDEX, index_context(request, problem=FOLLOW_UP_NOT_FOUND), status=404)
    return render(request, INDEX, index_context(request, None, **thread_marker("follow", turn.id, turn.prompt)))


def submitted_ask(request: HtmxHttpRequest) -> Ask | HttpResponse:
    """The visitor's ask from the posted form, or the 422 form with its field messages."""
    form = PromptForm(request.POST)
    if not form.is_valid():
        return invalid_prompt_form(request, form)
    thread = {name: (form.cleaned_data.get(name) or "").strip() for name in ("parent_id", "sibling_of")}
    return thread_ask(form.to_ask(), visitor_scope(request), **thread)


@htmx_action(INDEX, page_context=submitted_form_context)
def submit_prompt(request: HtmxHttpRequest) -> HttpResponse:
    ask = submitted_ask(request)
    if isinstance(ask, HttpResponse):
        return ask
    interaction = answer_blocking(ask, visitor_scope(request))
    if not request.htmx:
        return HttpResponseRedirect(f"{reverse('app:index')}?answer={interaction.id}", status=303)
    return render(request, f"{INDEX}#answer-with-row", {"answer": interaction})


@require_GET
@vary_on_htmx
@renders_problems(DETAIL)
def interaction_detail(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    interaction = get_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    return page_or_fragment(request, DETAIL, "interaction", {"interaction": interaction})
