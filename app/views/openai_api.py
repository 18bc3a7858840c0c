"""The OpenAI-compatible API under ``/v1``: models, chat completions, completions (streamed or not).

Any OpenAI client (the ``openai`` SDK, LangChain, curl…) pointed at ``http://host/v1`` is answered by
the offered models through the same path as the page (``app.services.generation``: rate limit, answer
cache, model worker with batching and Stop, the durable record), and every call lands in the history
with ``source: "api"``, the key's name and the whole conversation.

Authentication: ``Authorization: Bearer <key>`` with a key from ``API_TOKENS``
(``[NAME[:USERNAME]@]TOKEN``, see ``django_hf_ml/api_keys.py``). A key bound to a user keeps its calls in
that user's history. With no key configured, ``/v1`` answers only clients on this machine (loopback,
no proxy headers), with any key or none, and keeps their calls under one local owner (``api:local``);
anything else gets 403. No cookie is ever used here, so the views are CSRF-exempt, and a browser page
cannot call them cross-site: a JSON body needs a CORS preflight, which this server never grants.

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with 400, 401, 403, 404, 405,
413, 415, 429 (``Retry-After``) or 503; a stream that fails after it started ends with an error event.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from app.domain.generation import Ask
from app.domain.interaction import STATUS_ERROR, Interaction, Scope
from app.domain.stops import StopFilter
from app.errors import (
    InvalidParams,
    InvalidPrompt,
    ModelNotOffered,
    ModelUnavailable,
    StoreUnavailable,
    TooManyRequests,
)
from app.services.api_tokens import KEY_USER_MISSING, KeyUserMissing, configured_keys, find_key, key_scope
from app.services.conversations import api_thread
from app.services.generation import Stream, answer_blocking, start_stream
from app.services.metrics_exposition import PROXY_HEADERS
from app.services.model_specs import offered_models, resolve_spec
from app.services.openai.errors import (
    BODY_TOO_LARGE,
    CONTENT_TYPE_REQUIRED,
    INVALID_KEY,
    LOCAL_ONLY,
    METHOD_NOT_ALLOWED,
    MISSING_KEY,
    NOT_FOUND,
    STREAM_FAILED,
    OpenAIError,
    decode_body,
    error_body,
)
from app.services.openai.requests import ApiRequest, model_not_found, parse_chat_request, parse_completion_request
from app.services.openai.responses import (
    SSE_DONE,
    SSE_KEEPALIVE,
    ChunkMaker,
    completion_body,
    finish_reason_of,
    model_object,
    models_list,
    sse_data,
)

logger = logging.getLogger(__name__)

SOURCE_API = "api"
LOCAL_SCOPE = Scope(session_id="api:local")
KEEPALIVE_SECONDS = 1.0  # a comment line this often while waiting: a closed connection is noticed on the next write
STREAM_END_WAIT_SECONDS = 10.0
MODELS_CREATED = int(time.time())  # when this process started offering its models


@dataclass(frozen=True)
class Caller:
    """Who is calling: whose history the calls go to, and the key's name (None: unnamed or local)."""

    scope: Scope
    key_name: str | None


Handler = Callable[..., HttpResponseBase]


def openai_endpoint(*methods: str) -> Callable[[Handler], Handler]:
    """Method check, authentication and OpenAI-shaped errors around a ``/v1`` view ``(request, caller, …)``."""

    def decorate(view: Handler) -> Handler:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise OpenAIError(
                        METHOD_NOT_ALLOWED.format(method=request.method, path=request.path, allowed=", ".join(methods)),
                        status=405,
                        code="method_not_allowed",
                    )
                return view(request, authenticate(request), **kwargs)
            except OpenAIError as exc:
                response = error_response(exc)
                if exc.status == 405:
                    response["Allow"] = ", ".join(methods)
                return response

        return wrapped

    return decorate


def error_response(error: OpenAIError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="v1"'
    return response


def authenticate(request: HttpRequest) -> Caller:
    """The caller of a ``/v1`` request, or a 401/403 ``OpenAIError`` (a key is never logged)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not configured_keys():
        if not is_local_unproxied(request):
            raise OpenAIError(LOCAL_ONLY, status=403, code="local_only")
        return Caller(scope=LOCAL_SCOPE, key_name=None)
    if not token:
        raise OpenAIError(MISSING_KEY, status=401, code="missing_api_key")
    key = find_key(token)
    if key is None:
        logger.warning("/v1 request with an unknown API key from %s", request.META.get("REMOTE_ADDR"))
        raise OpenAIError(INVALID_KEY, status=401, code="invalid_api_key")
    try:
        scope = key_scope(key)
    except KeyUserMissing:
        raise OpenAIError(KEY_USER_MISSING, status=401, code="invalid_api_key") from None
    return Caller(scope=scope, key_name=key.name)


def is_local_unproxied(request: HttpRequest) -> bool:
    """A client on this machine that did not come through a proxy (a local proxy would make everyone local)."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# --- views --------------------------------------------------------------------------------------


@openai_endpoint("GET")
def list_models(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    return JsonResponse(models_list([spec.id for spec in offered_models()], created=MODELS_CREATED))


@openai_endpoint("GET")
def retrieve_model(request: HttpRequest, caller: Caller, model_id: str) -> HttpResponseBase:
    return JsonResponse(model_object(_offered_model(model_id), created=MODELS_CREATED))


@openai_endpoint("POST")
def chat_completions(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    parsed = parse_chat_request(_payload(request), max_chars=settings.PROMPT_MAX_CHARS)
    return _answer(parsed, caller, chat=True)


@openai_endpoint("POST")
def completions(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    parsed = parse_completion_request(_payload(request), max_chars=settings.PROMPT_MAX_CHARS)
    return _answer(parsed, caller, chat=False)


@openai_endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
def not_found(request: HttpRequest, caller: Caller, rest: str = "") -> HttpResponseBase:
    """Any other ``/v1/…`` address: OpenAI's 404 instead of the HTML page."""
    raise OpenAIError(NOT_FOUND.format(method=request.method, path=request.path), status=404, code="unknown_url")


# --- helpers ------------------------------------------------------------------------------------


def _payload(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise OpenAIError(CONTENT_TYPE_REQUIRED, status=415, code="unsupported_media_type")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise OpenAIError(BODY_TOO_LARGE, status=413, code="request_too_large") from None
    return decode_body(raw)


def _offered_model(model_id: str) -> str:
    """The allowlisted id (``resolve_spec``); a request's model id is never loaded as such."""
    if model_id:  # empty would mean "the default" to resolve_spec
        try:
            return resolve_spec(model_id).id
        except ModelNotOffered:
            pass
    raise model_not_found(model_id)


def _answer(parsed: ApiRequest, caller: Caller, *, chat: bool) -> HttpResponseBase:
    model = _offered_model(parsed.model)
    ask = Ask(
        prompt=parsed.prompt,
        params=parsed.params,
        model=model,
        messages=parsed.turns,
        stop=parsed.stop,
        source=SOURCE_API,
        api_key=caller.key_name,
        end_user=parsed.user,
    )
    ask = api_thread(ask, caller.scope)  # messages extending an earlier answer of this key continue its thread
    created = int(time.time())
    try:
        if parsed.stream:
            return _stream_response(start_stream(ask, caller.scope), parsed, model=model, created=created, chat=chat)
        interaction = answer_blocking(ask, caller.scope)
    except TooManyRequests as exc:
        raise OpenAIError(
            exc.message, status=429, type="rate_limit_error", code="rate_limit_exceeded", retry_after=exc.retry_after
        ) from None
    except InvalidParams as exc:
        raise OpenAIError(str(exc), param=next(iter(exc.errors), None)) from None
    except InvalidPrompt as exc:
        raise OpenAIError(exc.message, param="messages" if chat else "prompt") from None
    except ModelNotOffered:
        raise model_not_found(model) from None
    except (ModelUnavailable, StoreUnavailable) as exc:
        raise OpenAIError(exc.message, status=503, type="server_error", code="engine_unavailable") from None
    prefix = "chatcmpl" if chat else "cmpl"
    body = completion_body(
        chat=chat,
        id=f"{prefix}-{interaction.id}",
        created=created,
        model=model,
        interaction=interaction,
        params=ask.params,
    )
    return JsonResponse(body)


def _stream_response(stream: Stream, parsed: ApiRequest, *, model: str, created: int, chat: bool) -> HttpResponseBase:
    stream.attached = True  # this response is its listener (no unattached-stream timeout)
    maker = ChunkMaker(
        id=f"{'chatcmpl' if chat else 'cmpl'}-{stream.id}",
        created=created,
        model=model,
        chat=chat,
        include_usage=parsed.include_usage,
    )
    response = StreamingHttpResponse(_relay(stream, maker, parsed), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def _relay(stream: Stream, maker: ChunkMaker, parsed: ApiRequest) -> Iterator[str]:
    """The chunks of one answer; a closed connection cancels the request (its record is still written)."""
    inference = stream.request
    stops = StopFilter(parsed.stop)
    try:
        opening = maker.start()
        if opening is not None:
            yield sse_data(opening)
        while inference is not None:
            event = inference.next_event(timeout=KEEPALIVE_SECONDS)
            if event is None:
                if stream.finished:
                    break
                yield SSE_KEEPALIVE
                continue
            if event.kind in ("done", "error"):
                break
            if event.kind != "token":
                continue
            piece = stops.feed(event.text)
            if piece:
                yield sse_data(maker.text(piece))
            if stops.stopped:
                stream.cancel()  # a stop string: the row ends after this token; the record is cut there too
        stream.ended.wait(STREAM_END_WAIT_SECONDS)
        interaction = stream.interaction
        if interaction is None or interaction.status == STATUS_ERROR:
            yield sse_data(_stream_error(stream, interaction))
            yield SSE_DONE
            return
        rest = stops.finish(interaction.output)
        if rest:
            yield sse_data(maker.text(rest))
        yield sse_data(maker.finish(finish_reason_of(interaction, parsed.params)))
        if maker.include_usage:
            yield sse_data(maker.usage(interaction))
        yield SSE_DONE
    finally:
        if inference is not None and not inference.finished:
            logger.info("/v1 stream %s closed by the client; cancelling (the partial answer is recorded)", stream.id)
            inference.cancel()


def _stream_error(stream: Stream, interaction: Interaction | None) -> dict[str, Any]:
    """The error event of a stream that failed after it started (the SDK raises it as ``APIError``)."""
    detail = interaction.error if interaction is not None and interaction.error else "the model did not finish."
    error = stream.request.error if stream.request is not None else None
    if isinstance(error, InvalidPrompt):  # e.g. the model's chat template refused the conversation
        return error_body(detail, param="messages")
    return error_body(STREAM_FAILED.format(detail=detail), type="server_error", code="engine_unavailable")
