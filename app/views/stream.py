"""Streaming answers: start (htmx form post), the Server-Sent Events feed, stop, regenerate.

The page posts the prompt form here with htmx; the answer is a fragment whose ``sse-connect`` opens
``GET /stream/<id>/events``. That feed is an async view: its ``StreamingHttpResponse`` iterates an
async generator (``stream_follow.follow``), so under an ASGI server (uvicorn: ``manage.py serve``,
production) an open feed holds no thread, only a coroutine. Every event carries an id, the number of
characters of the answer sent so far: a reconnect (the browser's own ``Last-Event-ID``, or ``?from=``
on a reloaded page) gets the text it misses, then the live rest, from whichever process it reaches.
A closed tab only ends its feed; the generation goes on and is stored (only Stop cancels).
Without JavaScript the same URLs answer with a redirect to the finished answer, and the prompt form
itself still posts to ``/prompt/``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from asgiref.sync import sync_to_async
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET
from django_htmx.http import push_url

from app.domain.generation import Ask, GenerationParams
from app.errors import InvalidParams, StreamNotFound
from app.forms.feed import resume_offset
from app.services.conversations import regenerate_ask
from app.services.generation import Stream, start_stream, stop_stream
from app.services.interactions import get_interaction
from app.services.stream_follow import FeedEvent, follow, running
from app.views._htmx import HtmxHttpRequest, htmx_action
from app.views._visitor import visitor_scope
from app.views.prompt import INDEX, submitted_ask, submitted_form_context

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 1.0  # a comment line this often while waiting: keeps proxies from closing an idle feed
STATUS_STARTED = "Generating…"
STATUS_QUEUED = "Waiting in the queue: position {position}."
REGENERATE_PARAMS_GONE = "This answer's parameters are no longer valid; edit them and send the prompt again."


@htmx_action(INDEX, page_context=submitted_form_context)
def stream_start(request: HtmxHttpRequest) -> HttpResponse:
    ask = submitted_ask(request)
    return ask if isinstance(ask, HttpResponse) else _start(request, ask)


@htmx_action(INDEX, page_context=submitted_form_context)
def regenerate(request: HtmxHttpRequest, interaction_id: str) -> HttpResponse:
    """A new answer to an earlier prompt with the same parameters and model, linked to the old record."""
    earlier = get_interaction(scope=visitor_scope(request), interaction_id=interaction_id)
    try:
        params = GenerationParams.from_mapping(earlier.params, ignore_unknown=True)
    except InvalidParams as exc:
        raise InvalidParams(exc.errors, REGENERATE_PARAMS_GONE) from None
    ask = Ask(prompt=earlier.prompt, params=params, model=earlier.model, regenerated_from=earlier.id, use_cache=False)
    ask = regenerate_ask(ask, visitor_scope(request), earlier)  # a sibling: same parent, same earlier turns
    if not request.htmx and request.POST.get("return_to") == "conversation":
        stream = start_stream(ask, visitor_scope(request))
        stream.attached = True
        stream.ended.wait()
        at = stream.interaction.id if stream.interaction is not None else earlier.id
        return HttpResponseRedirect(f"{conversation_url(earlier.thread_id)}?at={at}#turn-{at}", status=303)
    return _start(request, ask)


@require_GET
async def stream_events(request: HtmxHttpRequest, stream_id: str) -> HttpResponseBase:
    """The SSE feed of one stream: ``queued``/``started`` status, ``token`` deltas, then ``done``."""
    scope = await sync_to_async(visitor_scope)(request)
    feed = follow(stream_id, scope, offset=resume_offset(request), keepalive=KEEPALIVE_SECONDS)
    events = relay(request, feed, _render_end)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
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
    # The page's URL names the running answer: a reload shows it and keeps streaming it.
    return push_url(render(request, f"{INDEX}#stream", {"feed": running(stream)}), _answer_url(stream.id))


async def relay(
    request: HtmxHttpRequest,
    feed: AsyncIterator[FeedEvent],
    render_end: Callable[[HtmxHttpRequest, FeedEvent], str],
) -> AsyncIterator[str]:
    """An answer feed as SSE messages; the end is rendered by ``render_end`` (the page's or a compare column's)."""
    yield ": stream open\n\n"
    async for event in feed:
        if event.kind == "keepalive":
            yield ": keep-alive\n\n"
        elif event.kind == "end":
            yield sse("done", await sync_to_async(render_end)(request, event), event_id=event.offset)
            return
        else:
            yield _event_message(event)


def _render_end(request: HtmxHttpRequest, event: FeedEvent) -> str:
    if event.interaction is None:
        return _render(request, "problem", {"problem": event.problem or StreamNotFound().message})
    return _render(request, "answer-with-row", {"answer": event.interaction, "save_error": event.save_error})


def _render(request: HtmxHttpRequest, partial: str, context: dict[str, object]) -> str:
    return render_to_string(f"{INDEX}#{partial}", context, request).strip()


def _event_message(event: FeedEvent) -> str:
    if event.kind == "text":
        return sse("token", escape(event.text), event_id=event.offset)
    if event.phase == "queued":
        return sse("queued", escape(STATUS_QUEUED.format(position=event.position)), event_id=event.offset)
    return sse("started", STATUS_STARTED, event_id=event.offset)


def sse(event: str, data: str, *, event_id: int | None = None) -> str:
    """One Server-Sent Events message; every line of ``data`` gets its own ``data:`` field.

    ``event_id`` (characters of the answer sent so far) is what the browser sends back as
    ``Last-Event-ID`` when it reconnects.
    """
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n{lines}\n"


def _done_context(stream: Stream) -> dict[str, object]:
    return {"answer": stream.interaction, "save_error": stream.store_error}


def _redirect_to_answer(stream: Stream) -> HttpResponse:
    url = _answer_url(stream.interaction.id) if stream.interaction is not None else reverse("app:index")
    return HttpResponseRedirect(url, status=303)


def conversation_url(conversation_id: str) -> str:
    return reverse("app:conversation", args=[conversation_id])


def _answer_url(answer_id: str) -> str:
    return f"{reverse('app:index')}?answer={answer_id}"
