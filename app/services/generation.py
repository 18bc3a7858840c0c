"""Answering a prompt end to end: model choice, rate limit, answer cache, worker, record.

Two ways in, one set of rules:

* ``answer_blocking`` — the form POST without JavaScript and ``POST /api/generate``: waits for the
  whole answer (through the same worker, so it is batched with concurrent streams).
* ``start_stream`` — the page with JavaScript: returns a ``Stream`` at once; the SSE view relays its
  events, whether or not anybody is still listening (a closed tab is not a Stop).

Both write ahead: the record is stored ``pending`` (through the outbox) before the engine starts, and
its id is the stream's id. While the engine runs, ``live_generations`` checkpoints the partial text
and a heartbeat into it every 0.5 s and picks up a Stop written by any process; at the end the final
record (``ok``, ``cancelled`` with the text streamed until Stop, or ``error``) replaces it. A record
left pending by a dead process becomes ``interrupted`` (``reaper``).

Every record goes through ``records.store_interaction``. The OpenAI-compatible API (``/v1``) comes in
through the same two functions with an ``Ask`` that also carries the whole conversation, stop strings
and where the call came from (source, key name); stop strings cut the recorded answer too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.domain.generation import Ask, GenerationParams, GenerationResult, check_params_for_task
from app.domain.ids import is_interaction_id, utc_now
from app.domain.interaction import STATUS_CANCELLED, STATUS_ERROR, STATUS_OK, STATUS_PENDING, Interaction, Scope
from app.domain.stops import truncate_at_stop
from app.errors import DomainError, InvalidParams, ModelUnavailable, StoreUnavailable, StreamNotFound
from app.services import answer_cache
from app.services.engines.worker import InferenceRequest, OnFinish
from app.services.live_generations import await_record_end, get_checkpointer, request_stop_quietly, worker_name
from app.services.model_registry import service_for
from app.services.model_specs import GenerationService
from app.services.mongo_generation import request_stop
from app.services.mongo_repo import get_repository
from app.services.rate_limit import check_rate_limit
from app.services.records import store_interaction, withdraw_pending

logger = logging.getLogger(__name__)

STREAM_KEEP_SECONDS = 300.0  # finished streams stay addressable (stop/late reconnect) this long


@dataclass
class Stream:
    """One streamed answer: its request on the worker, and the record once it has ended."""

    id: str
    owner: str
    ask: Ask
    model: str
    task: str
    request: InferenceRequest | None
    interaction: Interaction | None = None  # the final record, once the request has ended
    pending: Interaction | None = None  # the write-ahead record (same id), from the start
    store_error: str | None = None
    attached: bool = False
    created: float = field(default_factory=time.monotonic)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.ended.is_set()

    def cancel(self) -> None:
        if self.request is not None:
            self.request.cancel()


def prepare(ask: Ask, scope: Scope) -> GenerationService:
    """Check the model, its parameters and the visitor's rate limit; return the service to use."""
    service = service_for(ask.model)
    check_params_for_task(ask.params, service.task)
    check_rate_limit(scope.owner, prompts=0 if ask.rate_counted else 1)
    return service


def answer_blocking(ask: Ask, scope: Scope) -> Interaction:
    """Answer and store; a model failure is stored too (status ``error``), then raised."""
    service = prepare(ask, scope)
    started = time.perf_counter()
    cached = _cached_interaction(ask, scope, service)
    if cached is not None:
        store_interaction(cached)
        return cached
    pending = _write_ahead(ask, scope, service)
    try:
        result = _generate(service, ask, pending)
    except ModelUnavailable as exc:
        _store_quietly(_failed_interaction(ask, scope, service, exc, pending=pending))
        raise
    except BaseException:  # refused by the engine (invalid prompt…) before it answered: no record, as before
        get_checkpointer().forget(pending.id)
        withdraw_pending(pending)
        raise
    interaction = interaction_for(ask, scope, service, result, pending=pending)
    store_interaction(interaction)
    answer_cache.remember(scope=scope, interaction=interaction)
    interaction.durations_ms["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return interaction


def start_stream(ask: Ask, scope: Scope) -> Stream:
    """Store the pending record, queue the request (or answer from the cache), register the stream.

    The stream's id is the record's id. The request runs to its end whether or not anybody listens.
    """
    service = prepare(ask, scope)
    cached = _cached_interaction(ask, scope, service)
    if cached is not None:
        store_interaction(cached)
        stream = _new_stream(cached, ask, scope, service)
        stream.interaction = cached
        stream.ended.set()
        _register(stream)
        return stream
    pending = _write_ahead(ask, scope, service)
    stream = _new_stream(pending, ask, scope, service)

    def on_finish(request: InferenceRequest) -> None:
        _record_stream_end(stream, scope, service, request)

    stream.request = _submit(service, ask, pending, on_finish=on_finish)
    _register(stream)
    return stream


def get_stream(stream_id: str, scope: Scope) -> Stream:
    """This visitor's stream with that id, or ``StreamNotFound``."""
    with _streams_lock:
        stream = _streams.get(stream_id)
    if stream is None or stream.owner != scope.owner:
        raise StreamNotFound()
    return stream


def stop_stream(stream_id: str, scope: Scope, *, wait_seconds: float = 5.0) -> Stream:
    """Stop the visitor's generation wherever it runs; wait briefly for the partial answer to be recorded.

    The Stop marker is written on the record (``stop_requested_at``): the generating process sees it at
    its next checkpoint (≤ 0.5 s). A stream of this process is also cancelled at once.
    """
    try:
        stream: Stream | None = get_stream(stream_id, scope)
    except StreamNotFound:
        stream = None
    if stream is not None:
        stream.cancel()
        if not stream.finished:
            request_stop_quietly(stream_id, scope=scope)
        stream.ended.wait(wait_seconds)
        return stream
    if not is_interaction_id(stream_id) or not request_stop(get_repository(), stream_id, scope=scope, now=utc_now()):
        raise StreamNotFound()
    return _remote_stream(stream_id, scope, wait_seconds)


def interaction_for(
    ask: Ask, scope: Scope, service: GenerationService, result: GenerationResult, *, pending: Interaction | None = None
) -> Interaction:
    """The final record of ``result``; with ``pending``, it replaces that write-ahead record (same id)."""
    result = apply_stop(ask, result)
    cancelled = result.finish_reason == "cancelled"
    return _record(
        ask,
        scope,
        service,
        **_continuing(pending, cancelled=cancelled),
        output=result.text,
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        durations_ms={
            "load_ms": round(result.load_seconds * 1000, 1),
            "generate_ms": round(result.generate_seconds * 1000, 1),
            "model_total_ms": round(result.total_seconds * 1000, 1),
        },
        status=STATUS_CANCELLED if cancelled else STATUS_OK,
        cache_key=None if cancelled else _key(ask, service),
        finish_reason=result.finish_reason,
    )


def apply_stop(ask: Ask, result: GenerationResult) -> GenerationResult:
    """The result cut before the first stop string of the ask (then it finished with ``stop``)."""
    if not ask.stop:
        return result
    text, found = truncate_at_stop(result.text, ask.stop)
    return dataclasses.replace(result, text=text, finish_reason="stop") if found else result


# --- internals ---------------------------------------------------------------------------------

_streams: dict[str, Stream] = {}
_streams_lock = threading.Lock()


def _register(stream: Stream) -> None:
    now = time.monotonic()
    with _streams_lock:
        stale = [key for key, old in _streams.items() if old.finished and now - old.created > STREAM_KEEP_SECONDS]
        for key in stale:
            del _streams[key]
        _streams[stream.id] = stream


def reset_streams() -> None:
    """Cancel and forget every stream (tests)."""
    with _streams_lock:
        streams = list(_streams.values())
        _streams.clear()
    for stream in streams:
        stream.cancel()
    get_checkpointer().clear()


def _new_stream(record: Interaction, ask: Ask, scope: Scope, service: GenerationService) -> Stream:
    stream = Stream(id=record.id, owner=scope.owner, ask=ask, model=service.model, task=service.task, request=None)
    stream.pending = record
    return stream


def _write_ahead(ask: Ask, scope: Scope, service: GenerationService) -> Interaction:
    """Store the ``pending`` record (durably: MongoDB, else the outbox) before the engine starts."""
    pending = _record(ask, scope, service, output="", status=STATUS_PENDING, worker=worker_name())
    pending.heartbeat_at = pending.created_at
    get_checkpointer().reserve(pending.id)
    try:
        store_interaction(pending)
    except BaseException:
        get_checkpointer().forget(pending.id)
        raise
    return pending


def _submit(
    service: GenerationService, ask: Ask, pending: Interaction, *, on_finish: OnFinish = None
) -> InferenceRequest:
    """Queue the request of ``pending`` and checkpoint it while it runs; a refusal withdraws the record."""
    try:
        request = service.submit(ask.prompt, ask.params, on_finish=on_finish, messages=ask.messages)
    except BaseException:
        get_checkpointer().forget(pending.id)
        withdraw_pending(pending)
        raise
    get_checkpointer().track(pending.id, request, shape=lambda text: _cut_at_stop(ask, text))
    return request


def _cut_at_stop(ask: Ask, text: str) -> str:
    return truncate_at_stop(text, ask.stop)[0] if ask.stop else text


def _continuing(pending: Interaction | None, *, cancelled: bool = False) -> dict[str, Any]:
    """The fields a final record keeps from its pending one (id, time, worker), and when it ended."""
    if pending is None:
        return {}
    now = utc_now()
    return {
        "id": pending.id,
        "created_at": pending.created_at,
        "worker": pending.worker,
        "heartbeat_at": now,
        "checkpoint": get_checkpointer().forget(pending.id) + 1,
        "stop_requested_at": now if cancelled else None,
    }


def _remote_stream(stream_id: str, scope: Scope, wait_seconds: float) -> Stream:
    """A stream of another process, stopped through the store: its record once it has ended (or as is)."""
    record = await_record_end(stream_id, scope=scope, wait_seconds=wait_seconds)
    if record is None:
        raise StreamNotFound()
    try:
        params = GenerationParams.from_mapping(record.params, ignore_unknown=True)
    except InvalidParams:
        params = GenerationParams()
    ask = Ask(prompt=record.prompt, params=params, model=record.model, use_cache=False)
    ended = record.status != STATUS_PENDING
    stream = Stream(id=record.id, owner=scope.owner, ask=ask, model=record.model, task=record.task, request=None)
    stream.pending, stream.interaction = record, record if ended else None
    if ended:
        stream.ended.set()
    return stream


def _key(ask: Ask, service: GenerationService) -> str | None:
    return answer_cache.cache_key(model=service.model, task=service.task, params=ask.params, prompt=_cache_text(ask))


def _cache_text(ask: Ask) -> str:
    """What the answer depends on besides model and settings: the prompt, or the conversation and stops."""
    if not ask.messages and not ask.stop:
        return ask.prompt
    material = {"messages": [turn.to_dict() for turn in ask.messages], "prompt": ask.prompt, "stop": list(ask.stop)}
    return json.dumps(material, sort_keys=True, ensure_ascii=False)


def _generate(service: GenerationService, ask: Ask, pending: Interaction) -> GenerationResult:
    """Wait for the whole answer; with stop strings, cancel the request as soon as one appears."""
    request = _submit(service, ask, pending)
    if ask.stop:
        text = ""
        for event in request.events():
            if event.kind == "token":
                text += event.text
                if truncate_at_stop(text, ask.stop)[1]:
                    request.cancel()  # the row ends after the current token; the rest would be cut anyway
                    break
    return apply_stop(ask, request.wait())


def _cached_interaction(ask: Ask, scope: Scope, service: GenerationService) -> Interaction | None:
    if not ask.use_cache:
        return None
    started = time.perf_counter()
    key = _key(ask, service)
    found = answer_cache.lookup(scope=scope, key=key)
    if found is None:
        return None
    return _record(
        ask,
        scope,
        service,
        output=found.output,
        prompt_tokens=found.prompt_tokens,
        output_tokens=found.output_tokens,
        durations_ms={"generate_ms": 0.0, "cache_ms": round((time.perf_counter() - started) * 1000, 3)},
        cached=True,
        cached_from=found.source_id,
        cache_key=key,
    )


def _failed_interaction(
    ask: Ask, scope: Scope, service: GenerationService, error: DomainError, *, pending: Interaction | None = None
) -> Interaction:
    return _record(ask, scope, service, output="", status=STATUS_ERROR, error=error.message, **_continuing(pending))


def _record(ask: Ask, scope: Scope, service: GenerationService, **fields: Any) -> Interaction:
    """The record of ``ask`` in ``scope`` on ``service``'s model; ``fields`` says how it ended."""
    record = Interaction(
        prompt=ask.prompt,
        model=service.model,
        task=service.task,
        **scope.owner_fields(),
        params=ask.record_params(),
        **ask.record_links(),
        source=ask.source,
        api_key=ask.api_key,
        end_user=ask.end_user,
        messages=[turn.to_dict() for turn in ask.messages] if ask.messages and ask.record_messages else None,
        parent_id=ask.parent_id,
        turns_dropped=ask.turns_dropped,
        **fields,
    )
    record.conversation_id = ask.conversation_id or record.id  # a new conversation is named by its first turn
    return record


def _store_quietly(interaction: Interaction) -> str | None:
    """Store; on failure log and return the message (the visitor still sees the answer)."""
    try:
        store_interaction(interaction)
    except StoreUnavailable as exc:
        return exc.message
    except Exception:
        logger.exception("Could not record interaction %s", interaction.id)
        return "The answer could not be saved."
    return None


def _record_stream_end(stream: Stream, scope: Scope, service: GenerationService, request: InferenceRequest) -> None:
    """Runs in the worker thread when the request ends, before the client hears ``done``."""
    pending = stream.pending
    if request.result is not None:
        interaction = interaction_for(stream.ask, scope, service, request.result, pending=pending)
        interaction.durations_ms["total_ms"] = round(request.result.total_seconds * 1000, 1)
        if request.first_token_at is not None:
            interaction.durations_ms["first_token_ms"] = round((request.first_token_at - request.enqueued_at) * 1000, 1)
    else:
        error = request.error or ModelUnavailable("failed")
        interaction = _failed_interaction(stream.ask, scope, service, error, pending=pending)
    stream.store_error = _store_quietly(interaction)
    if stream.store_error is None:
        answer_cache.remember(scope=scope, interaction=interaction)
    stream.interaction = interaction
    stream.ended.set()
