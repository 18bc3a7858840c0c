"""The ``openai`` engine: any OpenAI-compatible server (vLLM, TGI's Messages API, llama-server, Ollama, OpenAI).

Like ``RemoteBackend`` (``app/services/remote.py``) requests go through the model's ``ModelWorker``
(bounded queue, positions, 429 when full, cancel) but are not batched here: each one is sent at once in
its own thread and the server batches them (continuous batching in vLLM, TGI and llama-server). At most
``max_concurrent`` are in flight; the rest wait in the worker's queue.

Each request streams ``/v1/chat/completions`` (chat models; the server applies the chat template) or
``/v1/completions`` (raw completion, ``api="completions"``) through the official ``openai`` SDK. Our
decoding settings map to the API's (``openai_parameters``): greedy is ``temperature=0``; sampling sends
temperature and top_p, and top_k / repetition penalty / min_p only to servers that accept llama.cpp's
extended sampling fields. Every call is bounded by ``timeout`` seconds (connect, each read, and the
whole generation). Stop (cancel) closes the upstream HTTP stream, which makes the server stop
generating. Upstream failures become the app's domain errors: 429 → ``TooManyRequests`` with the
server's Retry-After; 5xx, timeouts and connection errors → ``ModelUnavailable`` (503); other 4xx →
``InvalidPrompt`` with the server's reason (e.g. a prompt longer than the context).

The text is streamed and recorded exactly like a local model's: deltas of the stripped answer so far,
one ``GenerationResult`` at the end, so records, the answer cache and SSE look the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import openai
from openai import OpenAI

from app.domain.generation import GenerationParams, GenerationResult, Turns, check_params_for_task
from app.domain.streams import StreamEvent
from app.errors import PROMPT_EMPTY, DomainError, InvalidPrompt, ModelUnavailable
from app.services.device import RuntimeProfile
from app.services.engines.lazy_worker import LazyWorker, OnItsWorker
from app.services.engines.openai_wire import (
    FINISH_REASONS,
    UPSTREAM_FAILED,
    ApiStyle,
    GenerationDeadline,
    UpstreamStreamError,
    choice_text,
    openai_parameters,
    sse_events,
    stream_error_text,
    upstream_error,
)
from app.services.engines.worker import InferenceRequest, OnFinish
from django_hf_ml.choices import CAUSAL_TASK

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CONCURRENT = 16
PLACEHOLDER_API_KEY = "not-needed"  # the SDK insists on a key; local servers ignore it


class OpenAIBackend:
    """Streams each request from an OpenAI-compatible server; a ``BatchBackend`` for ``ModelWorker``.

    ``base_url`` is a callable so the llamacpp engine can point it at a sidecar that moves to a new port
    when it is restarted (and raise ``ModelUnavailable`` while it is down).
    """

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: Callable[[], str],
        api_key: str = "",
        api: ApiStyle = "chat",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        extended_sampling: bool = False,
        stop: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.model = model
        self._base_url = base_url
        self._api_key = api_key or PLACEHOLDER_API_KEY
        self.api: ApiStyle = api
        self.timeout = timeout
        self.extended_sampling = extended_sampling
        self.stop = tuple(stop)
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._clients: dict[str, OpenAI] = {}
        self._clients_lock = threading.Lock()
        self._in_flight = 0
        self.load_hook: Callable[[], float] | None = None  # e.g. start a sidecar; returns seconds spent
        self.explain_failure: Callable[[DomainError], DomainError] | None = None  # e.g. "it is restarting"

    def load(self) -> float:
        return self.load_hook() if self.load_hook is not None else 0.0

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        for request in requests:
            self._slots.acquire()
            with self._clients_lock:
                self._in_flight += 1  # counted before the thread starts: an unload in between must see it
            thread = threading.Thread(target=self._run_in_slot, args=(request,), name=f"openai:{request.id[:8]}")
            thread.daemon = True
            thread.start()

    @property
    def in_flight(self) -> int:
        """Requests being streamed right now (the worker's queue does not see them once sent)."""
        return self._in_flight

    def _run_in_slot(self, request: InferenceRequest) -> None:
        try:
            self.run_one(request)
        except Exception:  # run_one reports every failure to the request; this is a last guard
            logger.exception("OpenAI-compatible request %s failed unexpectedly", request.id)
            request._finish(error=ModelUnavailable(UPSTREAM_FAILED.format(url=self.name, reason="unexpected error")))
        finally:
            with self._clients_lock:
                self._in_flight -= 1
            self._slots.release()

    def client(self, base_url: str) -> OpenAI:
        """One SDK client (one HTTP connection pool) per base URL, shared by all requests."""
        with self._clients_lock:
            client = self._clients.get(base_url)
            if client is None:
                client = OpenAI(
                    base_url=f"{base_url.rstrip('/')}/v1" if not base_url.rstrip("/").endswith("/v1") else base_url,
                    api_key=self._api_key,
                    timeout=openai.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, self.timeout)),
                    max_retries=0,  # a retry would double the visitor's wait; the worker's queue handles load
                )
                stale, self._clients = list(self._clients.values()), {base_url: client}
                for old in stale:  # a restarted sidecar's old port is never used again
                    old.close()
            return client

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def run_one(self, request: InferenceRequest) -> None:
        started = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        raw, sent, pieces, finish = "", "", 0, "length"
        usage: dict[str, Any] = {}
        try:
            url = self._base_url()
            response = self._open(self.client(url), request)
        except DomainError as exc:
            self._fail(request, exc)
            return
        except Exception as exc:
            self._fail(request, upstream_error(exc, url=self.name, timeout=self.timeout))
            return
        try:
            for event in sse_events(response.iter_lines()):
                if request.cancelled:
                    finish = "cancelled"
                    break
                if time.monotonic() > deadline:
                    raise GenerationDeadline()
                if "error" in event:
                    raise UpstreamStreamError(stream_error_text(event["error"]))
                usage = event.get("usage") or usage
                choices = event.get("choices") or ()
                if not choices:
                    continue
                choice = choices[0]
                piece = choice_text(choice, self.api)
                if piece:
                    pieces += 1
                    raw += piece
                    current = raw.strip()
                    if current.startswith(sent) and len(current) > len(sent):
                        request._emit(StreamEvent("token", text=current[len(sent) :]))
                        sent = current
                if choice.get("finish_reason"):
                    finish = FINISH_REASONS.get(str(choice["finish_reason"]), "stop")
        except Exception as exc:
            self._fail(request, upstream_error(exc, url=self.name, timeout=self.timeout))
            return
        finally:
            response.close()  # closes the HTTP response: the server stops generating a cancelled request
        now = time.perf_counter()
        result = GenerationResult(
            text=raw.strip(),
            model=self.model,
            task=CAUSAL_TASK,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or pieces) if finish != "cancelled" else pieces,
            load_seconds=0.0,
            generate_seconds=now - started,
            total_seconds=now - request.enqueued_at,
            finish_reason=finish,  # type: ignore[arg-type]
        )
        request._finish(result=result)

    def _open(self, client: OpenAI, request: InferenceRequest) -> Any:
        """Send the request; the streamed body is read as raw SSE lines (see ``sse_events``).

        A pooled keep-alive connection the server has just closed fails before any response byte: that one
        request is sent again, once (the SDK's own retries are off: they would also repeat 429s and 5xx).
        """
        try:
            return self._create(client, request)
        except openai.APIConnectionError as exc:
            if isinstance(exc, openai.APITimeoutError) or "disconnected" not in str(exc.__cause__ or "").lower():
                raise
            logger.info("Reconnecting to %s (a pooled connection was closed by the server)", self.name)
            return self._create(client, request)

    def _create(self, client: OpenAI, request: InferenceRequest) -> Any:
        call = openai_parameters(request.params, stop=self.stop, extended_sampling=self.extended_sampling)
        common: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "extra_body": call.extra_body or None,
            **call.fields,
        }
        # ``with_streaming_response`` gives the HTTP response (status errors are raised here); it is entered
        # now and closed by ``run_one`` whatever happens, which is what its ``__exit__`` would do.
        if self.api == "completions":
            return client.completions.with_streaming_response.create(prompt=request.prompt, **common).__enter__()
        messages = [turn.to_dict() for turn in request.messages] or [{"role": "user", "content": request.prompt}]
        create = client.chat.completions.with_streaming_response.create
        return create(messages=messages, **common).__enter__()  # type: ignore[arg-type]

    def _fail(self, request: InferenceRequest, error: DomainError) -> None:
        if self.explain_failure is not None:
            error = self.explain_failure(error)
        logger.warning("Generation on %s failed: %s", self.name, error.message)
        request._finish(error=error)


class OpenAIService(OnItsWorker):
    """The ``GenerationService`` of a model served by an OpenAI-compatible server (engine ``openai``)."""

    engine = "openai"

    def __init__(self, *, model: str, backend: OpenAIBackend) -> None:
        self.model = model
        self.task = CAUSAL_TASK
        self.backend = backend
        self.runtime: RuntimeProfile | None = None  # set by the engine choice: where the model runs
        self._worker = LazyWorker(lambda: backend, unbatched=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    @property
    def is_loaded(self) -> bool:
        return True

    def warm_up(self) -> float:
        return 0.0

    def describe(self) -> str:
        return f"openai engine: {self.backend.api} API at {self.backend.name}"

    def submit(
        self, prompt: str, params: GenerationParams, *, on_finish: OnFinish = None, messages: Turns = ()
    ) -> InferenceRequest:
        """Queue ``prompt`` (or the whole conversation ``messages``, sent as chat messages) for the server."""
        if not prompt.strip():
            raise InvalidPrompt(PROMPT_EMPTY)
        check_params_for_task(params, self.task)
        return self.worker().submit(prompt, params, on_finish=on_finish, messages=messages)

    def generate(self, prompt: str, params: GenerationParams, *, messages: Turns = ()) -> GenerationResult:
        return self.submit(prompt, params, messages=messages).wait()

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[StreamEvent]:
        """Submit and yield every event (scripts and benchmarks)."""
        return self.submit(prompt, params).events()

    def memory_bytes(self) -> int:
        return 0

    def unload(self) -> None:
        self._worker.stop()
        self.backend.close()
