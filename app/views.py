"""HTML pages. Each view parses input, calls a service and renders a full page or, for htmx, a partial."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from app.domain.interaction import Interaction
from app.errors import DomainError, InteractionNotFound, ModelUnavailable, StoreUnavailable, TooManyRequests
from app.forms import PromptForm, initial_from_interaction
from app.services.interactions import answer_prompt, get_interaction, recent_interactions
from app.visitor import visitor_scope

INDEX = "app/index.html"
DETAIL = "app/interaction_detail.html"


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("HX-Request",))
    return response


def _recent(request: HttpRequest) -> tuple[list[Interaction], str | None]:
    """The visitor's latest interactions, or a message when the store is down."""
    try:
        page = recent_interactions(scope=visitor_scope(request), limit=settings.RECENT_INTERACTIONS)
    except StoreUnavailable as exc:
        return [], exc.message
    return page.items, None


def _index_context(request: HttpRequest, form: PromptForm, **extra: Any) -> dict[str, Any]:
    recent, store_error = _recent(request)
    return {"form": form, "recent": recent, "store_error": store_error, **extra}


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    answer: Interaction | None = None
    answer_id = request.GET.get("answer", "")
    if answer_id:
        try:
            answer = get_interaction(scope=visitor_scope(request), interaction_id=answer_id)
        except (InteractionNotFound, StoreUnavailable):
            answer = None
    # An answer's prompt, parameters and model fill the form again: change a parameter and send it anew.
    form = PromptForm(initial=initial_from_interaction(answer.prompt, answer.params, answer.model) if answer else None)
    return _vary_on_htmx(render(request, INDEX, _index_context(request, form, answer=answer)))


@require_POST
def submit_prompt(request: HttpRequest) -> HttpResponse:
    form = PromptForm(request.POST)
    if not form.is_valid():
        return _invalid_prompt(request, form)
    prompt_input = form.to_input()
    try:
        interaction = answer_prompt(
            prompt=prompt_input.prompt,
            params=prompt_input.params,
            scope=visitor_scope(request),
            model=prompt_input.model,
        )
    except (ModelUnavailable, StoreUnavailable) as exc:
        return _unavailable(request, form, exc)
    except TooManyRequests as exc:
        return too_many_requests(_unavailable(request, form, exc, status=429), exc)
    if not request.htmx:
        return HttpResponseRedirect(f"{reverse('app:index')}?answer={interaction.id}", status=303)
    return _vary_on_htmx(render(request, f"{INDEX}#answer-with-row", {"answer": interaction}))


def _invalid_prompt(request: HttpRequest, form: PromptForm) -> HttpResponse:
    if request.htmx:
        response = render(request, f"{INDEX}#prompt-form", {"form": form}, status=422)
        return _vary_on_htmx(reswap(retarget(response, "#prompt-form"), "outerHTML"))
    return _vary_on_htmx(render(request, INDEX, _index_context(request, form), status=422))


def _unavailable(request: HttpRequest, form: PromptForm, error: DomainError, status: int = 503) -> HttpResponse:
    if request.htmx:
        return _vary_on_htmx(render(request, f"{INDEX}#problem", {"problem": error.message}, status=status))
    context = _index_context(request, form, problem=error.message)
    return _vary_on_htmx(render(request, INDEX, context, status=status))


def too_many_requests(response: HttpResponse, error: TooManyRequests) -> HttpResponse:
    """A 429 (queue full or rate limit) tells the client when to come back."""
    response["Retry-After"] = str(error.retry_after)
    return response


@require_GET
def interaction_detail(request: HttpRequest, interaction_id: str) -> HttpResponse:
    try:
        interaction = get_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    except InteractionNotFound as exc:
        return render(request, DETAIL, {"problem": exc.message}, status=404)
    except StoreUnavailable as exc:
        return render(request, DETAIL, {"problem": exc.message}, status=503)
    template = f"{DETAIL}#interaction" if request.htmx else DETAIL
    return _vary_on_htmx(render(request, template, {"interaction": interaction}))
