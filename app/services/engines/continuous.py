"""Continuous (iteration-level) batching for the transformers engine, causal models.

The static batcher (``engines.transformers_batch.LocalBackend``) runs a batch to its end: a request that
arrives meanwhile waits for the whole batch (head-of-line blocking). Here one decode loop owns the model
and, between two decode steps:

- admits every waiting request: the prompts that arrived since the last step are prefilled together, in
  one forward (left-padded, each with its own positions), which gives their KV caches and first tokens
  (streamed at once), and the rows join the running batch (``DecodeBatch.admit``: the shorter side is
  left-padded with zero keys/values and a zero attention mask, so every row keeps its own positions);
- runs one decode step for all rows together (``position_ids`` per row, the 2-D padding mask, one new
  cache column);
- lets finished rows (end of sequence, their own ``max_new_tokens``, Stop) leave at once
  (``DecodeBatch.drop``: their cache rows are removed and all-padding columns trimmed).

Each row picks its next token with its own settings (greedy, or temperature/top-k/top-p sampling with its
own seeded generator, and its own repetition penalty), so requests with different settings share a step
and a seeded answer does not depend on who else is in the batch. Greedy answers are token for token the
ones an unbatched ``generate()`` gives (tested on tiny models). Beam search and seq2seq models are run
by the static path (``LocalBackend``), on the same loop thread, between steps.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.domain.generation import GenerationResult
from app.domain.streams import StreamEvent
from app.errors import DomainError, InvalidPrompt, ModelUnavailable
from app.services.engines.continuous_batch import DecodeBatch, LiveRow, next_tokens
from app.services.engines.lazy_worker import LazyWorker
from app.services.engines.transformers_batch import PROMPT_NOT_ENCODABLE, LocalBackend
from app.services.engines.transformers_model import LoadedModel, decode_text
from app.services.engines.transformers_service import NLPService
from app.services.engines.worker import GENERATION_FAILED, InferenceRequest

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 8
_swap_lock = threading.Lock()


def use_continuous_batching(service: NLPService, *, max_rows: int = DEFAULT_MAX_ROWS) -> NLPService:
    """Serve ``service`` with the continuous loop instead of the static batcher (idempotent; HF_BATCHING)."""
    with _swap_lock:
        current = service._worker
        if not current.unbatched:
            service._worker = LazyWorker(lambda: ContinuousBackend(service, max_rows=max_rows), unbatched=True)
            current.stop()
    return service


class ContinuousBackend:
    """A ``BatchBackend`` whose ``run_batch`` hands requests to one decode loop and returns at once.

    At most ``max_rows`` requests decode together; beyond that ``run_batch`` blocks, the worker's queue
    fills and new requests get 429 as with the static batcher. The requests of one ``run_batch`` call
    reach the loop together, so they are prefilled in one forward.
    """

    def __init__(self, service: NLPService, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.service = service
        self.name = service.model
        self.max_rows = max_rows
        self._slots = threading.BoundedSemaphore(max_rows)
        self._incoming: queue.SimpleQueue[list[InferenceRequest]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self.steps = 0
        self.largest_batch = 0
        self.prefills = 0
        self.largest_prefill = 0  # the most prompts prefilled in one forward
        self._static = LocalBackend(service)
        self.on_row_finished: Callable[[InferenceRequest, list[int]], None] | None = None  # tests, benchmarks

    def load(self) -> float:
        return self.service.warm_up()

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        self._ensure_thread()
        ready: list[InferenceRequest] = []
        for request in requests:
            request._load_seconds = load_seconds  # type: ignore[attr-defined]
            if not self._slots.acquire(blocking=False):  # the batch is full: let those with a row go first
                if ready:
                    self._incoming.put(ready)
                    ready = []
                self._slots.acquire()
            ready.append(request)
        if ready:
            self._incoming.put(ready)

    # -- the decode loop (one thread owns the model) --

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"continuous:{self.name}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        import torch

        batch: DecodeBatch | None = None
        loaded: LoadedModel | None = None
        while True:
            arrived: list[InferenceRequest] = []
            if batch is None or not len(batch) or loaded is None:
                arrived = self._incoming.get()  # idle: sleep until a request comes
                try:
                    loaded = self.service.loaded_model()
                except ModelUnavailable as exc:  # unloaded between the worker's load() and now
                    for request in arrived:
                        self._release(request, error=exc)
                    continue
                if batch is None or batch.model is not loaded.model:
                    batch = DecodeBatch(loaded.model)
            try:
                with torch.inference_mode():
                    self._admit_waiting(batch, loaded, arrived)
                    if len(batch):
                        self._decode_step(batch, loaded)
            except Exception as exc:  # never let the loop die: fail the rows it held, start clean
                logger.exception("Continuous batch on %s failed", self.name)
                error = ModelUnavailable(GENERATION_FAILED.format(detail=type(exc).__name__))
                for row in batch.rows:
                    self._release(row.request, error=error)
                batch = None

    def _admit_waiting(self, batch: DecodeBatch, loaded: LoadedModel, arrived: list[InferenceRequest]) -> None:
        """Admit everything that arrived since the last step: the causal requests in one prefill forward."""
        while True:
            try:
                arrived.extend(self._incoming.get_nowait())
            except queue.Empty:
                break
        joining: list[InferenceRequest] = []
        for request in arrived:
            if request.cancelled:
                self._release(request, result=self._result(request, loaded, [], "cancelled", 0, time.perf_counter()))
            elif loaded.kind != "causal" or request.params.num_beams > 1:
                self._run_static(request)
            else:
                joining.append(request)
        if joining:
            try:
                self._admit(batch, loaded, joining)
            except Exception as exc:
                error = ModelUnavailable(GENERATION_FAILED.format(detail=type(exc).__name__))
                for request in joining:
                    if not request.finished:
                        self._release(request, error=error)
                raise

    def _admit(self, batch: DecodeBatch, loaded: LoadedModel, requests: list[InferenceRequest]) -> None:
        """Prefill ``requests`` together (one forward), stream each one's first token, and join the batch."""

        started = time.perf_counter()
        encoded: list[tuple[InferenceRequest, torch.Tensor]] = []
        for request in requests:
            try:
                ids = self.service.encode_prompt(loaded, request.prompt, messages=request.messages)["input_ids"][0]
            except Exception as exc:  # a chat template that refuses the conversation: this request fails alone
                detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                self._release(request, error=InvalidPrompt(PROMPT_NOT_ENCODABLE.format(detail=detail)))
                continue
            encoded.append((request, ids))
        if not encoded:
            return
        prefilled, logits = batch.prefill([ids for _, ids in encoded])
        self.prefills += 1
        self.largest_prefill = max(self.largest_prefill, len(encoded))
        rows = [self._new_row(request, ids, started) for request, ids in encoded]
        staying = [
            index for index, token in enumerate(next_tokens(logits, rows)) if self._accept(rows[index], token, loaded)
        ]
        batch.admit([rows[index] for index in staying], prefilled.select(staying))
        self.largest_batch = max(self.largest_batch, len(batch))

    @staticmethod
    def _new_row(request: InferenceRequest, input_ids: torch.Tensor, started: float) -> LiveRow:
        import torch

        generator = None
        if request.params.do_sample and request.params.seed is not None:
            generator = torch.Generator(device=input_ids.device).manual_seed(request.params.seed)
        length = int(input_ids.shape[-1])
        return LiveRow(
            request=request,
            prompt_tokens=length,
            position=length,
            last_token=0,
            started=started,
            seen=input_ids.clone(),
            generator=generator,
        )

    def _decode_step(self, batch: DecodeBatch, loaded: LoadedModel) -> None:
        logits = batch.step()
        self.steps += 1
        finished = []
        for index, (row, token) in enumerate(zip(batch.rows, next_tokens(logits, batch.rows), strict=True)):
            row.position += 1
            if not self._accept(row, token, loaded):
                finished.append(index)
        batch.drop(finished)

    def _accept(self, row: LiveRow, token: int, loaded: LoadedModel) -> bool:
        """Record ``token`` for ``row``; False (and the request finished) when the row ends here."""
        import torch

        if row.request.cancelled:
            self._finish(row, loaded, "cancelled")
            return False
        row.token_ids.append(token)
        if token in loaded.eos_token_ids:
            self._finish(row, loaded, "stop")
            return False
        row.last_token = token
        if row.params.repetition_penalty != 1.0:
            row.seen = torch.cat([row.seen, row.seen.new_tensor([token])])
        self._send_delta(row, loaded)
        if len(row.token_ids) >= row.params.max_new_tokens:
            self._finish(row, loaded, "length")
            return False
        return True

    def _send_delta(self, row: LiveRow, loaded: LoadedModel) -> None:
        text = decode_text(loaded, row.token_ids)
        if text.endswith("\ufffd") or not text.startswith(row.sent_text):
            return
        delta = text[len(row.sent_text) :]
        if delta:
            row.sent_text = text
            row.request._emit(StreamEvent("token", text=delta))

    def _finish(self, row: LiveRow, loaded: LoadedModel, reason: str) -> None:
        if self.on_row_finished is not None:
            self.on_row_finished(row.request, list(row.token_ids))
        result = self._result(row.request, loaded, row.token_ids, reason, row.prompt_tokens, row.started)
        self._release(row.request, result=result)

    def _result(
        self,
        request: InferenceRequest,
        loaded: LoadedModel,
        token_ids: list[int],
        reason: str,
        prompt_tokens: int,
        started: float,
    ) -> GenerationResult:
        now = time.perf_counter()
        return GenerationResult(
            text=decode_text(loaded, token_ids),
            model=self.service.model,
            task=self.service.task,
            prompt_tokens=prompt_tokens,
            output_tokens=len(token_ids),
            load_seconds=float(getattr(request, "_load_seconds", 0.0)),
            generate_seconds=now - started,
            total_seconds=now - request.enqueued_at,
            finish_reason=reason,  # type: ignore[arg-type]
        )

    def _release(
        self,
        request: InferenceRequest,
        *,
        result: GenerationResult | None = None,
        error: DomainError | None = None,
    ) -> None:
        try:
            request._finish(result=result, error=error)
        finally:
            self._slots.release()

    def _run_static(self, request: InferenceRequest) -> None:
        """Beam search and seq2seq: the static path, alone, between two decode steps."""
        try:
            self._static.run_batch([request], load_seconds=float(getattr(request, "_load_seconds", 0.0)))
        except Exception as exc:
            logger.exception("Static generation on %s failed", self.name)
            request._finish(error=ModelUnavailable(GENERATION_FAILED.format(detail=type(exc).__name__)))
        finally:
            self._slots.release()
