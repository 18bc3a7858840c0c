"""Remote inference: send generation to a Text Generation Inference server or an HF Inference Endpoint.

With ``HF_ENDPOINT_URL`` set (and ``HF_API_TOKEN`` sent as the bearer token when set), the endpoint
is offered as a model like the local ones and is the default. Requests go through the same
``ModelWorker`` queue (queue limit, positions, cancel) but are not batched here: each one is sent at
once, in its own thread, with ``huggingface_hub.InferenceClient.text_generation(stream=True,
details=True)``, and the server batches them itself (TGI's continuous batching). Tokens are streamed
to the visitor as they arrive; cancelling closes the HTTP stream, which makes TGI stop generating.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings

from app.domain.generation import FinishReason, GenerationParams, GenerationResult, Turns, join_turns
from app.domain.streams import StreamEvent
from app.errors import PROMPT_EMPTY, InvalidPrompt, ModelUnavailable
from app.services.engines.lazy_worker import LazyWorker, OnItsWorker
from app.services.engines.worker import InferenceRequest, OnFinish
from django_hf_ml.choices import CAUSAL_TASK

if TYPE_CHECKING:
    from huggingface_hub import InferenceClient

logger = logging.getLogger(__name__)

REMOTE_FAILED = (
    "The remote endpoint {url} did not answer: {reason}. Check HF_ENDPOINT_URL and HF_API_TOKEN, "
    "or that the server is running."
)
TGI_FINISH_REASONS: dict[str, FinishReason] = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def tgi_parameters(params: GenerationParams) -> dict[str, Any]:
    """Our decoding settings as ``text_generation`` keyword arguments (TGI rejects top_p=1 and top_k=0)."""
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": params.do_sample}
    if params.do_sample:
        kwargs["temperature"] = params.temperature
        if params.top_p < 1.0:
            kwargs["top_p"] = params.top_p
        if params.top_k > 0:
            kwargs["top_k"] = params.top_k
    if params.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


class RemoteBackend:
    """Sends each request at once in its own thread, at most ``max_concurrent`` at a time.

    ``run_batch`` returns as soon as the requests are sent, so the worker can take the next ones;
    when ``max_concurrent`` are in flight it blocks, the queue fills up and new requests get 429.
    """

    def __init__(self, *, url: str, token: str | None, timeout: float, max_concurrent: int = 16) -> None:
        self.name = url
        self.url = url
        self._token = token
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def load(self) -> float:
        return 0.0

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        for request in requests:
            self._slots.acquire()
            thread = threading.Thread(target=self._run_in_slot, args=(request,), name=f"remote:{request.id[:8]}")
            thread.daemon = True
            thread.start()

    def _run_in_slot(self, request: InferenceRequest) -> None:
        try:
            self.run_one(request)
        finally:
            self._slots.release()

    def client(self) -> InferenceClient:
        from huggingface_hub import InferenceClient

        return InferenceClient(model=self.url, token=self._token, timeout=self._timeout)

    def run_one(self, request: InferenceRequest) -> None:
        started = time.perf_counter()
        text, tokens, finish = "", 0, "length"
        generated_text: str | None = None
        client = self.client()  # holds the HTTP response open while we iterate; closed below
        try:
            stream: Iterator[Any] = iter(
                client.text_generation(request.prompt, stream=True, details=True, **tgi_parameters(request.params))
            )
            for chunk in stream:
                if request.cancelled:
                    finish = "cancelled"
                    break
                tokens += 1
                if not chunk.token.special:
                    text += chunk.token.text
                    request._emit(StreamEvent("token", text=chunk.token.text))
                if chunk.details is not None:
                    finish = TGI_FINISH_REASONS.get(str(chunk.details.finish_reason), "stop")
                    tokens = int(chunk.details.generated_tokens or tokens)
                if chunk.generated_text is not None:
                    generated_text = chunk.generated_text
        except Exception as exc:  # network, HTTP status, malformed stream: one clear message
            first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
            logger.warning("Remote generation on %s failed: %s", self.url, reason)
            request._finish(error=ModelUnavailable(REMOTE_FAILED.format(url=self.url, reason=reason)))
            return
        finally:
            client.close()  # closes the HTTP response: TGI stops generating for a cancelled request
        now = time.perf_counter()
        final = (generated_text if generated_text is not None and finish != "cancelled" else text).strip()
        request._finish(
            result=GenerationResult(
                text=final,
                model=self.url,
                task=CAUSAL_TASK,
                prompt_tokens=0,  # TGI only reports prompt tokens with decoder_input_details
                output_tokens=tokens,
                load_seconds=0.0,
                generate_seconds=now - started,
                total_seconds=now - request.enqueued_at,
                finish_reason=finish,  # type: ignore[arg-type]
            )
        )


class RemoteService(OnItsWorker):
    """The ``GenerationService`` of a remote endpoint: same submit/generate API as ``NLPService``."""

    def __init__(self, *, url: str, token: str | None = None, timeout: float = 120.0, max_concurrent: int = 16) -> None:
        self.model = url
        self.task = CAUSAL_TASK
        self.backend = RemoteBackend(url=url, token=token, timeout=timeout, max_concurrent=max_concurrent)
        self._worker = LazyWorker(lambda: self.backend)

    def __repr__(self) -> str:
        return f"RemoteService(url={self.model!r})"

    @property
    def is_loaded(self) -> bool:
        return True

    def submit(
        self, prompt: str, params: GenerationParams, *, on_finish: OnFinish = None, messages: Turns = ()
    ) -> InferenceRequest:
        if not prompt.strip():
            raise InvalidPrompt(PROMPT_EMPTY)
        # A text-generation endpoint has no chat template here: a conversation goes as its joined turns.
        text = join_turns(messages) if messages else prompt
        return self.worker().submit(text, params, on_finish=on_finish)

    def generate(self, prompt: str, params: GenerationParams, *, messages: Turns = ()) -> GenerationResult:
        return self.submit(prompt, params, messages=messages).wait()

    def memory_bytes(self) -> int:
        return 0

    def unload(self) -> None:
        self._worker.stop()


_services: dict[tuple[str, str], RemoteService] = {}
_services_lock = threading.Lock()


def remote_service(*, url: str, token: str | None) -> RemoteService:
    """The process-wide service for an endpoint (the token is part of the key, never logged)."""
    key = (url, hashlib.sha256((token or "").encode()).hexdigest())
    with _services_lock:
        service = _services.get(key)
        if service is None:
            service = _services[key] = RemoteService(url=url, token=token, timeout=settings.HF_REMOTE_TIMEOUT_S)
        return service


def reset_remote_services() -> None:
    """Forget every remote service and stop its worker (tests)."""
    with _services_lock:
        services = list(_services.values())
        _services.clear()
    for service in services:
        service.unload()
