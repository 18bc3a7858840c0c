"""Streaming answers: start (htmx form post), the Server-Sent Events feed, stop, regenerate.

The page posts the prompt form here with htmx; the answer is a fragment whose ``sse-connect`` opens
``GET /stream/<id>/events``. That response is a ``StreamingHttpResponse`` whose generator relays
the worker's events: it occupies one thread of a threaded server (``manage.py serve`` / runserver,
gunicorn ``gthread``) while the model works in its own worker thread. A closed tab ends the
generator (the next write fails) and cancels the request. Without JavaScript the same URLs answer
with a redirect to the finished answer, and the prompt form itself still posts to ``/prompt/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from app.domain.generation import Ask, GenerationParams
from app.domain.streams import StreamEvent
from app.errors import InvalidParams, StreamNotFound
from app.forms.prompt import PromptForm
from app.services.generation import Stream, get_stream, start_stream, stop_stream
from app.services.interactions import get_interaction
from app.views._htmx import HtmxHttpRequest, htmx_action
from app.views._visitor import visitor_scope
from app.views.prompt import INDEX, invalid_prompt_form, submitted_form_context

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 1.0  # a comment line this often while waiting: a closed tab is noticed on the next write
STATUS_STARTED = "Generating…"
STATUS_QUEUED = "Waiting in the queue: position {position}."
REGENERATE_PARAMS_GONE = "This answer's parameters are no longer valid; edit them and send the prompt again."


@htmx_action(INDEX, page_context=submitted_form_context)
def stream_start(request: HtmxHttpRequest) -> HttpResponse:
    form = PromptForm(request.POST)
    if not form.is_valid():
        return invalid_prompt_form(request, form)
    ask = form.to_ask()
    return _start(request, ask)


@htmx_action(INDEX, page_context=submitted_form_context)
def regenerate(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    """A new answer to an earlier prompt with the same parameters and model, linked to the old record."""
    earlier = get_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    try:
        params = GenerationParams.from_mapping(earlier.params, ignore_unknown=True)
    except InvalidParams as exc:
        raise InvalidParams(exc.errors, REGENERATE_PARAMS_GONE) from None
    ask = Ask(prompt=earlier.prompt, params=params, model=earlier.model, regenerated_from=earlier.id, use_cache=False)
    return _start(request, ask)


@require_GET
def stream_events(request: HtmxHttpRequest, stream_id: str) -> HttpResponseBase:
    """The SSE feed of one stream: ``queued``/``started`` status, ``token`` deltas, then ``done``."""
    try:
        stream: Stream | None = get_stream(stream_id, visitor_scope(request))
    except StreamNotFound:
        stream = None
    response = StreamingHttpResponse(_relay(request, stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@htmx_action(INDEX, page_context=submitted_form_context)
def stream_stop(request: HtmxHttpRequest, stream_id: str) -> HttpResponse:
    """Stop generating; the partial answer is recorded as ``cancelled`` and arrives on the SSE feed."""
    try:
        stream = stop_stream(stream_id, visitor_scope(request), wait_seconds=0.0 if request.htmx else 5.0)
    except StreamNotFound:
        if request.htmx:
            return HttpResponse(status=204)  # already over: the feed has delivered (or will deliver) the end
        raise
    if request.htmx:
        return HttpResponse(status=204)
    return _redirect_to_answer(stream)


# --- helpers -----------------------------------------------------------------------------------


def _start(request: HtmxHttpRequest, ask: Ask) -> HttpResponse:
    stream = start_stream(ask, visitor_scope(request))
    if not request.htmx:  # no JavaScript: wait for the whole answer, then show it
        stream.attached = True
        stream.ended.wait()
        return _redirect_to_answer(stream)
    if stream.finished:  # answered from the cache
        return render(request, f"{INDEX}#answer-with-row", _done_context(stream))
    return render(request, f"{INDEX}#stream", {"stream": stream})


def _relay(request: HtmxHttpRequest, stream: Stream | None) -> Iterator[str]:
    if stream is None:
        yield sse("done", _render(request, "problem", {"problem": StreamNotFound().message}))
        return
    stream.attached = True
    inference = stream.request
    try:
        yield ": stream open\n\n"
        while inference is not None:
            event = inference.next_event(timeout=KEEPALIVE_SECONDS)
            if event is None:
                if stream.finished:  # a reconnect after the end: the earlier connection consumed the events
                    break
                yield ": keep-alive\n\n"
                continue
            if event.kind in ("done", "error"):
                break
            yield _event_message(event)
        stream.ended.wait(10.0)
        yield sse("done", _render(request, "answer-with-row", _done_context(stream)))
    finally:
        if inference is not None and not inference.finished:
            logger.info("Stream %s closed by the client; cancelling", stream.id)
            inference.cancel()


def _render(request: HtmxHttpRequest, partial: str, context: dict[str, object]) -> str:
    return render_to_string(f"{INDEX}#{partial}", context, request).strip()


def _event_message(event: StreamEvent) -> str:
    if event.kind == "token":
        return sse("token", escape(event.text))
    if event.kind == "queued":
        return sse("queued", escape(STATUS_QUEUED.format(position=event.position)))
    return sse("started", STATUS_STARTED)


def sse(event: str, data: str) -> str:
    """One Server-Sent Events message; every line of ``data`` gets its own ``data:`` field."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


def _done_context(stream: Stream) -> dict[str, object]:
    return {"answer": stream.interaction, "save_error": stream.store_error}


def _redirect_to_answer(stream: Stream) -> HttpResponse:
    url = reverse("app:index")
    if stream.interaction is not None:
        url = f"{url}?answer={stream.interaction.id}"
    return HttpResponseRedirect(url, status=303)
