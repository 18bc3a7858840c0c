"""The conversation page: one thread from its first turn to a leaf, its branches, and going on from it."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from app.services.conversations import conversation_thread
from app.views._htmx import HtmxHttpRequest, renders_problems, vary_on_htmx
from app.views._visitor import visitor_scope

CONVERSATION = "app/conversation.html"


@require_GET
@vary_on_htmx
@renders_problems(CONVERSATION)
def conversation_page(request: HtmxHttpRequest, conversation_id: str) -> HttpResponse:
    """``/conversations/<id>/?at=<turn>``: the thread through that turn (default: the newest); else 404."""
    at = request.GET.get("at", "").strip() or None
    thread = conversation_thread(scope=visitor_scope(request), conversation_id=conversation_id, at=at)
    return render(request, CONVERSATION, {"thread": thread})
