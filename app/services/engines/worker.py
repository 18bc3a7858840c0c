"""One inference worker per model, whatever runs it: a bounded queue, the batching policy, cancel.

Requests for one model go into that model's ``ModelWorker``. Its single daemon thread (created on the
first request, never at import) takes the oldest request, waits a few milliseconds for compatible
ones (same decoding settings, ``batch_key``) and hands them to the engine's ``BatchBackend`` in one
call. The engine streams each request's own events back through ``InferenceRequest``; a cancelled
request is dropped from the queue or stopped by the engine within about one token.

Requests that cannot share a batch without changing their output run alone: seeded sampling (one
RNG per batch), beam search (no streaming in transformers) and ``repetition_penalty`` ≠ 1 (the
penalty would also see the padding tokens).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from app.domain.generation import GenerationResult
from app.domain.streams import StreamEvent
from app.errors import QUEUE_FULL, DomainError, ModelUnavailable, QueueFull

if TYPE_CHECKING:
    from app.domain.generation import GenerationParams, Turns

logger = logging.getLogger(__name__)

# Called in the worker thread when a request ends, before its client hears ``done``.
OnFinish = Callable[["InferenceRequest"], None] | None

DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WINDOW_SECONDS = 0.008
GENERATION_FAILED = "Generation failed on the server ({detail}). Please try again."


class InferenceRequest:
    """One prompt waiting for, or being served by, a worker. Thread-safe; one consumer of ``events``."""

    def __init__(
        self,
        *,
        prompt: str,
        params: GenerationParams,
        on_finish: Callable[[InferenceRequest], None] | None = None,
        messages: Turns = (),
    ) -> None:
        self.id = uuid.uuid4().hex
        self.prompt = prompt
        self.params = params
        self.messages = tuple(messages)  # the whole conversation when there is one (OpenAI API), else ()
        self.enqueued_at = time.perf_counter()
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.result: GenerationResult | None = None
        self.error: DomainError | None = None
        self._on_finish = on_finish
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._events: queue.SimpleQueue[StreamEvent] = queue.SimpleQueue()
        self._parts: list[str] = []  # the streamed text so far, read by checkpoints (list.append is atomic)
        self._finish_lock = threading.Lock()
        self._canceller: Callable[[InferenceRequest], None] | None = None

    def __repr__(self) -> str:
        return f"InferenceRequest(id={self.id!r}, finished={self.finished}, cancelled={self.cancelled})"

    # -- client side --

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop this request: dropped from the queue, or its batch row ends after the current token."""
        if self.finished:
            return
        self._cancelled.set()
        if self._canceller is not None:
            self._canceller(self)

    def next_event(self, timeout: float | None = None) -> StreamEvent | None:
        """The next event, or None when nothing happened within ``timeout`` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, *, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Every event up to and including ``done``/``error`` (stops early when ``timeout`` passes idle)."""
        while True:
            event = self.next_event(timeout)
            if event is None:
                return
            yield event
            if event.kind in ("done", "error"):
                return

    def partial_text(self) -> str:
        """Every token streamed so far, joined (any thread)."""
        return "".join(self._parts[:])

    @property
    def streamed_tokens(self) -> int:
        return len(self._parts)

    def wait(self, timeout: float | None = None) -> GenerationResult:
        """Block until the request ends; return its result or raise its error."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"request {self.id} did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    # -- worker side --

    def _emit(self, event: StreamEvent) -> None:
        if event.kind == "token":
            self.first_token_at = self.first_token_at or time.perf_counter()
            self._parts.append(event.text)
        self._events.put(event)

    def _finish(self, *, result: GenerationResult | None = None, error: DomainError | None = None) -> None:
        with self._finish_lock:
            if self._finished.is_set():
                return
            self.result, self.error = result, error
            if self._on_finish is not None:
                try:
                    self._on_finish(self)
                except Exception:  # the client must still hear the end of its request
                    logger.exception("on_finish callback failed for request %s", self.id)
            self._finished.set()
        self._emit(StreamEvent("error" if error is not None else "done", text=error.message if error else ""))


class BatchBackend(Protocol):
    """What a worker needs from a model: load it, and run a batch of compatible requests."""

    name: str

    def load(self) -> float: ...

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None: ...


def batch_key(params: GenerationParams) -> tuple[Any, ...] | None:
    """Requests with equal keys may share one ``generate()``; None means this one runs alone."""
    if params.seed is not None or params.num_beams > 1 or params.repetition_penalty != 1.0:
        return None
    kwargs = params.generate_kwargs()
    kwargs.pop("max_new_tokens")  # each row stops at its own limit
    return tuple(sorted(kwargs.items()))


class ModelWorker:
    """A bounded queue and one daemon thread that serves it in batches."""

    def __init__(
        self,
        backend: BatchBackend,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_window_seconds: float = DEFAULT_BATCH_WINDOW_SECONDS,
    ) -> None:
        self.backend = backend
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.batch_window_seconds = batch_window_seconds
        self._waiting: deque[InferenceRequest] = deque()
        self._running: list[InferenceRequest] = []
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._average_batch_seconds = 1.0
        self._free_since = 0.0  # when the last batch ended: clients answered by it resubmit right after
        self.batches_run = 0
        self.largest_batch = 0

    def __repr__(self) -> str:
        return f"ModelWorker({self.backend.name!r}, waiting={self.queue_length}, running={len(self._running)})"

    @property
    def queue_length(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._running)

    def submit(
        self, prompt: str, params: GenerationParams, *, on_finish: OnFinish = None, messages: Turns = ()
    ) -> InferenceRequest:
        """Queue a request; ``QueueFull`` (with a ``retry_after``) when ``max_queue`` are waiting."""
        request = InferenceRequest(prompt=prompt, params=params, on_finish=on_finish, messages=messages)
        request._canceller = self._cancel
        with self._condition:
            if len(self._waiting) >= self.max_queue:
                seconds = self.retry_after_seconds()
                raise QueueFull(QUEUE_FULL.format(waiting=len(self._waiting), seconds=seconds), retry_after=seconds)
            self._waiting.append(request)
            request._emit(StreamEvent("queued", position=len(self._waiting)))
            self._ensure_thread()
            self._condition.notify_all()
        return request

    def retry_after_seconds(self) -> int:
        """A whole-second estimate of when the queue will have room again."""
        batches_ahead = len(self._waiting) / max(self.max_batch, 1) + 1
        return max(1, math.ceil(self._average_batch_seconds * batches_ahead))

    def stop(self) -> None:
        """Fail waiting requests, cancel running ones and let the thread end (model unloading, tests)."""
        with self._condition:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
            running = list(self._running)
            self._condition.notify_all()
        for request in running:
            request._cancelled.set()
        for request in waiting:
            request._finish(error=ModelUnavailable(GENERATION_FAILED.format(detail="the model was unloaded")))

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- internals --

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._serve, name=f"inference:{self.backend.name}", daemon=True)
            self._thread.start()

    def _cancel(self, request: InferenceRequest) -> None:
        with self._condition:
            try:
                self._waiting.remove(request)
            except ValueError:
                return  # running: its RowStopper ends the row
            self._announce_positions()
        request._finish(result=_cancelled_result(self.backend.name, request))

    def _announce_positions(self) -> None:
        for position, waiting in enumerate(self._waiting, start=1):
            waiting._emit(StreamEvent("queued", position=position))

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.perf_counter()
            try:
                self._run(batch)
            except Exception:  # _run reports errors to its requests; never let the worker thread die
                logger.exception("Inference worker for %s hit an unexpected error", self.backend.name)
            elapsed = time.perf_counter() - started
            self._average_batch_seconds = 0.8 * self._average_batch_seconds + 0.2 * elapsed
            with self._condition:
                self._running = []
                self._free_since = time.perf_counter()

    def _next_batch(self) -> list[InferenceRequest] | None:
        """The next batch: the oldest request plus compatible ones that arrive within the window."""
        with self._condition:
            while True:
                while not self._waiting and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return None
                first = self._waiting[0]
                key = batch_key(first.params)
                if key is not None:
                    self._wait_for_companions(first, key)
                if self._stopping:
                    return None
                if self._waiting and self._waiting[0] is first:
                    break
                # the oldest request was cancelled while we waited: start over with the new oldest
            batch = [self._waiting.popleft()]
            if key is not None:
                for candidate in list(self._waiting):
                    if len(batch) >= self.max_batch:
                        break
                    if batch_key(candidate.params) == key:
                        self._waiting.remove(candidate)
                        batch.append(candidate)
            self._running = batch
            self._announce_positions()
        return batch

    def _wait_for_companions(self, first: InferenceRequest, key: tuple[Any, ...]) -> None:
        """Wait (lock held, released while waiting) up to the batch window for compatible requests."""
        deadline = max(first.enqueued_at, self._free_since) + self.batch_window_seconds
        while not self._stopping and self._waiting and self._waiting[0] is first:
            if self._compatible_count(key) >= self.max_batch:
                return
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._condition.wait(remaining)

    def _compatible_count(self, key: tuple[Any, ...]) -> int:
        return sum(1 for request in self._waiting if batch_key(request.params) == key)

    def _run(self, batch: list[InferenceRequest]) -> None:
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for request in batch:
            request.started_at = time.perf_counter()
            request._emit(StreamEvent("started"))
        try:
            load_seconds = self.backend.load()
            self.backend.run_batch(batch, load_seconds=load_seconds)
        except DomainError as exc:
            for request in batch:
                request._finish(error=exc)
        except Exception as exc:
            logger.exception("Batch of %d on %s failed", len(batch), self.backend.name)
            error = ModelUnavailable(GENERATION_FAILED.format(detail=type(exc).__name__))
            for request in batch:
                request._finish(error=error)


def _cancelled_result(model: str, request: InferenceRequest) -> GenerationResult:
    elapsed = time.perf_counter() - request.enqueued_at
    return GenerationResult(
        text="",
        model=model,
        task="",
        prompt_tokens=0,
        output_tokens=0,
        load_seconds=0.0,
        generate_seconds=0.0,
        total_seconds=elapsed,
        finish_reason="cancelled",
    )
