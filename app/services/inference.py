"""One inference worker per loaded model: a bounded queue, micro-batching, per-request streaming, cancel.

Requests for one model go into that model's ``ModelWorker``. Its single daemon thread (created on the
first request, never at import) takes the oldest request, waits a few milliseconds for compatible
ones (same decoding settings), and runs them as one batched ``generate()``: causal prompts are
left-padded, seq2seq prompts right-padded, both with an attention mask. A ``BatchStreamer`` receives
every new token of every row and forwards it to that row's own request, so each client streams
exactly its own answer; a ``RowStopper`` (a ``StoppingCriteria``) ends one row when its request is
cancelled or reaches its own ``max_new_tokens``, so a stop takes effect within about one token
while the other rows go on.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from app.domain.streams import StreamEvent
from app.errors import QUEUE_FULL, DomainError, ModelUnavailable, QueueFull

if TYPE_CHECKING:
    import torch

    from app.domain.generation import GenerationParams, GenerationResult
    from app.services.nlp_service import LoadedModel, NLPService

logger = logging.getLogger(__name__)

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
    ) -> None:
        self.id = uuid.uuid4().hex
        self.prompt = prompt
        self.params = params
        self.enqueued_at = time.perf_counter()
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.result: GenerationResult | None = None
        self.error: DomainError | None = None
        self._on_finish = on_finish
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._events: queue.SimpleQueue[StreamEvent] = queue.SimpleQueue()
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
        if event.kind == "token" and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
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
        self,
        prompt: str,
        params: GenerationParams,
        *,
        on_finish: Callable[[InferenceRequest], None] | None = None,
    ) -> InferenceRequest:
        """Queue a request; ``QueueFull`` (with a ``retry_after``) when ``max_queue`` are waiting."""
        request = InferenceRequest(prompt=prompt, params=params, on_finish=on_finish)
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
    from app.domain.generation import GenerationResult

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


# --- Local transformers backend ------------------------------------------------------------------


@dataclass
class Row:
    """One request's slice of a batch: its tokens so far and whether it has ended."""

    request: InferenceRequest
    prompt_tokens: int
    max_new_tokens: int
    token_ids: list[int] = field(default_factory=list)
    sent_text: str = ""
    done: bool = False


class RowStopper:
    """A ``StoppingCriteria``: a row ends when its request is cancelled or reaches its own token limit."""

    def __init__(self, rows: Sequence[Row], *, start_length: int) -> None:
        self.rows = rows
        self.start_length = start_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        import torch

        generated = input_ids.shape[-1] - self.start_length
        flags = [row.done or row.request.cancelled or generated >= row.max_new_tokens for row in self.rows]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class BatchStreamer:
    """A transformers streamer for a whole batch: routes each row's new token to its own request."""

    def __init__(
        self,
        rows: Sequence[Row],
        *,
        loaded: LoadedModel,
        finish_row: Callable[[Row, str], None],
    ) -> None:
        self.rows = rows
        self.loaded = loaded
        self.finish_row = finish_row
        self._seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:  # generate() first hands over the prompt (or decoder start) ids
            self._seen_prompt = True
            return
        for row, token_id in zip(self.rows, value.view(-1).tolist(), strict=True):
            if row.done:
                continue
            if row.request.cancelled:
                self.finish_row(row, "cancelled")
                continue
            row.token_ids.append(int(token_id))
            if token_id in self.loaded.eos_token_ids:
                self.finish_row(row, "stop")
                continue
            self._send_delta(row)
            if len(row.token_ids) >= row.max_new_tokens:
                self.finish_row(row, "length")

    def end(self) -> None:
        for row in self.rows:
            if not row.done:
                self.finish_row(row, "cancelled" if row.request.cancelled else "length")

    def _send_delta(self, row: Row) -> None:
        text = decode_text(self.loaded, row.token_ids)
        if text.endswith("\ufffd") or not text.startswith(row.sent_text):
            return  # an incomplete multi-byte character, or a re-tokenised prefix: wait for the next token
        delta = text[len(row.sent_text) :]
        if delta:
            row.sent_text = text
            row.request._emit(StreamEvent("token", text=delta))


def decode_text(loaded: LoadedModel, token_ids: list[int]) -> str:
    """The answer text of ``token_ids`` the way the final result shows it (special tokens dropped, stripped)."""
    text = cast(str, loaded.tokenizer.decode(token_ids, skip_special_tokens=True))
    return text.strip()


class LocalBackend:
    """Runs batches on an ``NLPService``'s local transformers model.

    ``extra_logits_processors`` is a hook for tests and benchmarks (e.g. a processor that slows each
    step down so a browser can watch tokens arrive); it is empty in normal use.
    """

    extra_logits_processors: tuple[Any, ...] = ()

    def __init__(self, service: NLPService) -> None:
        self.service = service
        self.name = service.model

    def load(self) -> float:
        return self.service.warm_up()

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        loaded = self.service.loaded_model()
        if requests[0].params.num_beams > 1:
            self._run_beam_search(loaded, requests[0], load_seconds=load_seconds)
            return
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        encoded = [self.service.encode_prompt(loaded, request.prompt) for request in requests]
        input_ids, attention_mask = pad_batch(
            [item["input_ids"][0] for item in encoded],
            pad_token_id=loaded.pad_token_id if loaded.pad_token_id is not None else 0,
            left=loaded.kind == "causal",
        )
        rows = [
            Row(
                request=request,
                prompt_tokens=int(item["input_ids"].shape[-1]),
                max_new_tokens=request.params.max_new_tokens,
            )
            for request, item in zip(requests, encoded, strict=True)
        ]
        start_length = input_ids.shape[-1] if loaded.kind == "causal" else 1
        batch_started = time.perf_counter()

        def finish_row(row: Row, reason: str) -> None:
            row.done = True
            self._finish(row, reason=reason, loaded=loaded, batch_started=batch_started, load_seconds=load_seconds)

        streamer = BatchStreamer(rows, loaded=loaded, finish_row=finish_row)
        kwargs = requests[0].params.generate_kwargs()
        kwargs["max_new_tokens"] = max(row.max_new_tokens for row in rows)
        if requests[0].params.seed is not None:
            torch.manual_seed(requests[0].params.seed)
        with torch.inference_mode():
            loaded.model.generate(  # type: ignore[operator]
                input_ids=input_ids.to(self.service.device),
                attention_mask=attention_mask.to(self.service.device),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([RowStopper(rows, start_length=start_length)]),
                pad_token_id=loaded.pad_token_id,
                logits_processor=LogitsProcessorList(self.extra_logits_processors),
                **kwargs,
            )
        streamer.end()

    def _finish(self, row: Row, *, reason: str, loaded: LoadedModel, batch_started: float, load_seconds: float) -> None:
        from app.domain.generation import GenerationResult

        now = time.perf_counter()
        result = GenerationResult(
            text=decode_text(loaded, row.token_ids),
            model=self.service.model,
            task=self.service.task,
            prompt_tokens=row.prompt_tokens,
            output_tokens=len(row.token_ids),
            load_seconds=load_seconds,
            generate_seconds=now - batch_started,
            total_seconds=now - row.request.enqueued_at,
            finish_reason=reason,  # type: ignore[arg-type]
        )
        row.request._finish(result=result)

    def _run_beam_search(self, loaded: LoadedModel, request: InferenceRequest, *, load_seconds: float) -> None:
        """Beam search cannot stream (transformers refuses a streamer): one event with the whole answer."""
        from app.domain.generation import GenerationResult

        started = time.perf_counter()
        completion = self.service.complete(loaded, request.prompt, request.params)
        now = time.perf_counter()
        if completion.text:
            request._emit(StreamEvent("token", text=completion.text))
        request._finish(
            result=GenerationResult(
                text=completion.text,
                model=self.service.model,
                task=self.service.task,
                prompt_tokens=completion.prompt_tokens,
                output_tokens=completion.output_tokens,
                load_seconds=load_seconds,
                generate_seconds=now - started,
                total_seconds=now - request.enqueued_at,
                finish_reason="cancelled" if request.cancelled else completion.finish_reason,
            )
        )


def pad_batch(sequences: Sequence[torch.Tensor], *, pad_token_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D id tensors into ``(input_ids, attention_mask)``, padding on the left for causal models."""
    import torch

    width = max(int(seq.shape[-1]) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for index, seq in enumerate(sequences):
        length = int(seq.shape[-1])
        columns = slice(width - length, width) if left else slice(0, length)
        ids[index, columns] = seq.to(torch.long).cpu()
        mask[index, columns] = 1
    return ids, mask


class LazyWorker:
    """The one ``ModelWorker`` of a service, created on first use (lock + double check)."""

    def __init__(self, make_backend: Callable[[], BatchBackend]) -> None:
        self._make_backend = make_backend
        self._worker: ModelWorker | None = None
        self._lock = threading.Lock()

    def get(self) -> ModelWorker:
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = ModelWorker(self._make_backend(), **worker_settings())  # type: ignore[arg-type]
        return self._worker

    @property
    def queue_length(self) -> int:
        worker = self._worker
        return 0 if worker is None else worker.queue_length

    def stop(self) -> None:
        """Stop and forget the worker (if any); the next ``get()`` starts a fresh one."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()


def worker_settings() -> dict[str, float | int]:
    """Queue and batching limits from Django settings (defaults outside Django)."""
    try:
        from django.conf import settings

        return {
            "max_queue": int(getattr(settings, "HF_QUEUE_MAX", DEFAULT_MAX_QUEUE)),
            "max_batch": int(getattr(settings, "HF_MAX_BATCH", DEFAULT_MAX_BATCH)),
            "batch_window_seconds": float(getattr(settings, "HF_BATCH_WINDOW_MS", 8)) / 1000,
        }
    except Exception:  # settings not configured (scripts)
        return {
            "max_queue": DEFAULT_MAX_QUEUE,
            "max_batch": DEFAULT_MAX_BATCH,
            "batch_window_seconds": DEFAULT_BATCH_WINDOW_SECONDS,
        }
