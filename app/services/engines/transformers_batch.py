"""The transformers engine's batches: many prompts in one ``generate()``, each streamed to its own client.

Causal prompts are left-padded, seq2seq prompts right-padded, both with an attention mask. A
``BatchStreamer`` receives every new token of every row and forwards it to that row's own request,
so each client streams exactly its own answer; a ``RowStopper`` (a ``StoppingCriteria``) ends one row
when its request is cancelled or reaches its own ``max_new_tokens``, so a stop takes effect within
about one token while the other rows go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.domain.generation import GenerationResult
from app.domain.streams import StreamEvent
from app.errors import InvalidPrompt
from app.services.engines.transformers_model import LoadedModel, decode_text
from app.services.engines.worker import InferenceRequest

logger = logging.getLogger(__name__)

PROMPT_NOT_ENCODABLE = "The model cannot take this conversation: {detail}"

if TYPE_CHECKING:
    import torch

    from app.services.engines.transformers_service import NLPService


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

        requests, encoded = self._encode_each(loaded, requests)
        if not requests:
            return
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

    def _encode_each(
        self, loaded: LoadedModel, requests: Sequence[InferenceRequest]
    ) -> tuple[list[InferenceRequest], list[dict[str, torch.Tensor]]]:
        """Encode every request; one the model cannot take (a chat template that refuses the conversation)
        fails alone with ``InvalidPrompt`` instead of failing the whole batch."""
        accepted: list[InferenceRequest] = []
        encoded: list[dict[str, torch.Tensor]] = []
        for request in requests:
            try:
                encoded.append(self.service.encode_prompt(loaded, request.prompt, messages=request.messages))
            except Exception as exc:
                logger.warning("Request %s cannot be encoded for %s: %s", request.id, self.name, type(exc).__name__)
                detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                request._finish(error=InvalidPrompt(PROMPT_NOT_ENCODABLE.format(detail=detail)))
                continue
            accepted.append(request)
        return accepted, encoded

    def _finish(self, row: Row, *, reason: str, loaded: LoadedModel, batch_started: float, load_seconds: float) -> None:
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
        started = time.perf_counter()
        completion = self.service.complete(loaded, request.prompt, request.params, messages=request.messages)
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
