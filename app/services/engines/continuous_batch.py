"""The rows of a continuous batch: their shared KV cache (rows join left-padded, leave at once) and sampling.

Used by the decode loop in ``engines.continuous``; each row keeps its own positions, attention mask,
settings and seeded generator.

Cost per step is kept to what ``generate()`` itself pays: the batch keeps one ``DynamicCache`` from step to
step (rebuilding it each step copied every layer's keys and values once more), prompts that arrive together
are prefilled in one forward (left-padded, their own positions, only the last position's logits), and
greedy rows pick their tokens with one ``argmax`` over the whole batch. (Preallocating spare cache columns
instead of concatenating saved the copy but made attention over the strided views slower: not kept.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from app.domain.generation import GenerationParams
from app.services.engines.worker import InferenceRequest

if TYPE_CHECKING:
    import torch


@dataclass
class LiveRow:
    """One request decoding in the batch."""

    request: InferenceRequest
    prompt_tokens: int
    position: int  # position id of the next token fed in
    last_token: int
    started: float
    seen: torch.Tensor  # prompt + generated ids (for the repetition penalty)
    generator: torch.Generator | None = None
    token_ids: list[int] = field(default_factory=list)
    sent_text: str = ""

    @property
    def params(self) -> GenerationParams:
        return self.request.params


@dataclass
class Prefilled:
    """Prompts prefilled together: their cache (``[n, heads, L, dim]`` per layer) and ``[n, L]`` padding mask."""

    cache: Any  # transformers.DynamicCache
    mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def select(self, indices: Sequence[int]) -> Prefilled:
        """Only the rows ``indices`` (the others ended on their first token), leading all-padding columns trimmed."""
        import torch

        if len(indices) == len(self):
            return self
        selector = torch.tensor(list(indices), dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, selector)
        start = _first_used_column(mask)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, selector)[:, :, start:]
            layer.values = layer.values.index_select(0, selector)[:, :, start:]
        return Prefilled(self.cache, mask[:, start:])


class DecodeBatch:
    """The rows decoding together: one ``DynamicCache`` (per layer ``[rows, heads, T, dim]``), a ``[rows, T]`` mask."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: Any = None  # transformers.DynamicCache, kept across steps
        self.mask: torch.Tensor | None = None
        self.rows: list[LiveRow] = []

    def __len__(self) -> int:
        return len(self.rows)

    def prefill(self, prompts: Sequence[torch.Tensor]) -> tuple[Prefilled, torch.Tensor]:
        """One forward over the prompts (1-D id tensors), left-padded: their cache and last logits ``[n, V]``.

        Each row gets the positions an unbatched run gives it (0 at its first real token), padding is masked
        out, and only the last position goes through the output head.
        """
        import torch
        from transformers.cache_utils import DynamicCache

        device = prompts[0].device
        width = max(int(ids.shape[-1]) for ids in prompts)
        input_ids = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for index, ids in enumerate(prompts):
            length = int(ids.shape[-1])
            input_ids[index, width - length :] = ids
            mask[index, width - length :] = 1
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        cache = DynamicCache()
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return Prefilled(cache, mask), cast("torch.Tensor", output.logits[:, -1])

    def admit(self, rows: Sequence[LiveRow], prefilled: Prefilled) -> None:
        """Join ``rows`` (prefilled together) to the batch, left-padding whichever side is shorter."""
        import torch

        assert len(rows) == len(prefilled)
        if not rows:
            return
        if self.mask is None:
            self.cache, self.mask, self.rows = prefilled.cache, prefilled.mask, list(rows)
            return
        width = max(int(self.mask.shape[1]), int(prefilled.mask.shape[1]))
        for layer, joining in zip(self.cache.layers, prefilled.cache.layers, strict=True):
            layer.keys = torch.cat([_pad_left(layer.keys, width), _pad_left(joining.keys, width)])
            layer.values = torch.cat([_pad_left(layer.values, width), _pad_left(joining.values, width)])
        self.mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(prefilled.mask, width)])
        self.rows.extend(rows)

    def step(self) -> torch.Tensor:
        """One decode step for every row: feed each row's last token; return the next-token logits ``[rows, V]``."""
        import torch

        assert self.mask is not None
        device = self.mask.device
        input_ids = torch.tensor([[row.last_token] for row in self.rows], dtype=torch.long, device=device)
        positions = torch.tensor([[row.position] for row in self.rows], dtype=torch.long, device=device)
        mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
        )
        self.mask = mask
        return cast("torch.Tensor", output.logits[:, -1])

    def drop(self, indices: Sequence[int]) -> None:
        """Remove rows (finished or stopped) and the leading columns that are padding for every row left."""
        import torch

        if not indices:
            return
        gone = set(indices)
        keep = [index for index in range(len(self.rows)) if index not in gone]
        if not keep:
            self.cache, self.mask, self.rows = None, None, []
            return
        assert self.mask is not None
        selector = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, selector)
        start = _first_used_column(mask)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, selector)[:, :, start:]
            layer.values = layer.values.index_select(0, selector)[:, :, start:]
        self.mask = mask[:, start:]
        self.rows = [self.rows[index] for index in keep]


def _first_used_column(mask: torch.Tensor) -> int:
    used = mask.any(dim=0).nonzero()
    return int(used[0]) if used.numel() else 0


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    import torch

    missing = width - int(tensor.shape[2])
    if missing <= 0:
        return tensor
    shape = (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    import torch

    missing = width - int(mask.shape[1])
    return mask if missing <= 0 else torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], dim=1)


def next_tokens(logits: torch.Tensor, rows: Sequence[LiveRow]) -> list[int]:
    """Each row's next token from the batch's logits ``[rows, V]``: plain greedy rows share one ``argmax``."""
    plain = [not row.params.do_sample and row.params.repetition_penalty == 1.0 for row in rows]
    greedy: list[int] = logits.argmax(dim=-1).tolist() if any(plain) else []
    return [greedy[index] if plain[index] else next_token(logits[index], row) for index, row in enumerate(rows)]


def next_token(logits: torch.Tensor, row: LiveRow) -> int:
    """The row's next token from its logits ``[V]``: the same processors, in the same order, as ``generate()``."""
    import torch

    params = row.params
    scores = logits.float()
    if params.repetition_penalty != 1.0:
        seen = row.seen.to(scores.device)
        picked = scores.gather(0, seen)
        picked = torch.where(picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty)
        scores = scores.scatter(0, seen, picked)
    if not params.do_sample:
        return int(scores.argmax())
    scores = scores / params.temperature
    if 0 < params.top_k < scores.shape[-1]:
        threshold = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    if params.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - params.top_p)
        remove[-1] = False  # keep at least one token
        scores = scores.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    probabilities = scores.softmax(dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=row.generator))
