"""Stars and tags on an interaction: ``POST /history/<id>/star`` and ``/history/<id>/tags`` (+ the JSON API).

htmx swaps the star button or the tag block in place; without JavaScript the form posts and the
browser is sent back where it came from (``next``, same site only). Bad tags are a 422 with the
message and what was typed; another visitor's interaction is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from app.domain.interaction import Interaction
from app.domain.marks import normalize_tags
from app.errors import InvalidParams, InvalidTags
from app.services import marks
from app.services.interactions import get_interaction
from app.views._htmx import HtmxHttpRequest, htmx_action
from app.views._visitor import visitor_scope
from app.views.api import interaction_json, json_body

MARKS = "app/marks.html"
STARRED_VALUES = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}
STARRED_INVALID = "starred must be 1 (star) or 0 (unstar)."
API_STARRED_INVALID = "starred must be true or false."
API_TAGS_INVALID = 'tags must be a list of tags such as ["geo", "todo"].'


def _back(request: HtmxHttpRequest, interaction_id: str) -> str:
    """Where a form without JavaScript returns: the posted ``next`` when it is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("app:interaction_detail", args=[interaction_id])


def _context(request: HtmxHttpRequest, item: Interaction, **extra: Any) -> dict[str, Any]:
    return {"item": item, "next_url": _back(request, item.id), **extra}


@htmx_action(MARKS)
def star(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    scope = visitor_scope(request)
    value = STARRED_VALUES.get(request.POST.get("starred", "").strip().lower())
    if value is None:
        get_interaction(scope=scope, interaction_id=interaction_id)  # a foreign id is a 404, not a 422
        raise InvalidParams({"starred": STARRED_INVALID}, STARRED_INVALID)
    item = marks.set_star(scope=scope, interaction_id=interaction_id, starred=value)
    if request.htmx:
        return render(request, f"{MARKS}#star", _context(request, item, compact=request.POST.get("compact") == "1"))
    return HttpResponseRedirect(_back(request, interaction_id), status=303)


@htmx_action(MARKS)
def tags(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    scope = visitor_scope(request)
    text = request.POST.get("tags", "")
    compact = request.POST.get("compact") == "1"
    try:
        item = marks.set_tags(scope=scope, interaction_id=interaction_id, text=text)
    except InvalidTags as exc:
        item = get_interaction(scope=scope, interaction_id=interaction_id)  # a foreign id is a 404, not a 422
        context = _context(request, item, tag_problem=exc.message, tags_text=text, compact=compact)
        return render(request, f"{MARKS}#tags" if request.htmx else MARKS, context, status=exc.status)
    if request.htmx:
        return render(request, f"{MARKS}#tags", _context(request, item, compact=compact, tags_saved=True))
    return HttpResponseRedirect(_back(request, interaction_id), status=303)


@require_POST
def api_marks(request: HttpRequest, interaction_id: str) -> JsonResponse:
    """``{"starred": bool, "tags": [...]}`` (either or both) → the interaction with its marks."""
    scope = visitor_scope(request)
    item = get_interaction(scope=scope, interaction_id=interaction_id)  # a foreign id: 404 whatever the body
    payload = json_body(request)
    if isinstance(payload, JsonResponse):
        return payload
    starred, tag_list = payload.get("starred"), payload.get("tags")
    if starred is not None and not isinstance(starred, bool):
        raise InvalidParams({"starred": API_STARRED_INVALID}, API_STARRED_INVALID)
    if tag_list is not None and not isinstance(tag_list, list):
        raise InvalidTags(API_TAGS_INVALID)
    normalized = normalize_tags(tag_list) if tag_list is not None else None
    if starred is not None:
        item = marks.set_star(scope=scope, interaction_id=interaction_id, starred=starred)
    if normalized is not None:
        item = marks.set_tags(scope=scope, interaction_id=interaction_id, text=" ".join(normalized))
    return JsonResponse(interaction_json(item))
