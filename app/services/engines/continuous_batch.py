"""The rows of a continuous batch: their shared KV cache (rows join left-padded, leave at once) and sampling.

Used by the decode loop in ``engines.continuous``; each row keeps its own positions, attention mask,
settings and seeded generator.
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


class DecodeBatch:
    """The rows decoding together: per-layer keys/values ``[rows, heads, T, dim]``, a ``[rows, T]`` mask."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.mask: torch.Tensor | None = None
        self.rows: list[LiveRow] = []

    def __len__(self) -> int:
        return len(self.rows)

    def prefill(self, input_ids: torch.Tensor) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """One forward over a single prompt ``[1, L]``: its per-layer (keys, values) and last logits ``[V]``."""
        import torch
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache()
        output = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), cache=cache, use_cache=True)
        layers: list[Any] = list(cache.layers)  # DynamicLayer: keys/values are set once the forward ran
        return [(layer.keys, layer.values) for layer in layers], cast("torch.Tensor", output.logits[0, -1])

    def admit(self, row: LiveRow, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Join ``row`` (its prefilled cache ``kv``) to the batch, left-padding whichever side is shorter."""
        import torch

        length = int(kv[0][0].shape[2])
        ones = torch.ones((1, length), dtype=torch.long, device=kv[0][0].device)
        if self.mask is None:
            self.keys, self.values = [k for k, _ in kv], [v for _, v in kv]
            self.mask, self.rows = ones, [row]
            return
        width = max(int(self.mask.shape[1]), length)
        self.keys = [
            torch.cat([_pad_left(a, width), _pad_left(b, width)]) for a, (b, _) in zip(self.keys, kv, strict=True)
        ]
        self.values = [
            torch.cat([_pad_left(a, width), _pad_left(b, width)]) for a, (_, b) in zip(self.values, kv, strict=True)
        ]
        self.mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(ones, width)])
        self.rows.append(row)

    def step(self) -> torch.Tensor:
        """One decode step for every row: feed each row's last token; return the next-token logits ``[rows, V]``."""
        import torch
        from transformers.cache_utils import DynamicCache

        assert self.mask is not None
        device = self.mask.device
        count, width = len(self.rows), int(self.mask.shape[1])
        input_ids = torch.tensor([[row.last_token] for row in self.rows], dtype=torch.long, device=device)
        positions = torch.tensor([[row.position] for row in self.rows], dtype=torch.long, device=device)
        mask = torch.cat([self.mask, torch.ones((count, 1), dtype=torch.long, device=device)], dim=1)
        cache = DynamicCache(ddp_cache_data=list(zip(self.keys, self.values, strict=True)))
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            cache_position=torch.tensor([width], device=device),
            use_cache=True,
        )
        layers: list[Any] = list(cache.layers)
        self.keys = [layer.keys for layer in layers]
        self.values = [layer.values for layer in layers]
        self.mask = mask
        return cast("torch.Tensor", output.logits[:, -1])

    def drop(self, indices: Sequence[int]) -> None:
        """Remove rows (finished or stopped) and the leading columns that are padding for every row left."""
        import torch

        if not indices:
            return
        keep = [index for index in range(len(self.rows)) if index not in set(indices)]
        if not keep:
            self.keys, self.values, self.mask, self.rows = [], [], None, []
            return
        assert self.mask is not None
        selector = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, selector)
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else 0
        self.keys = [k.index_select(0, selector)[:, :, start:] for k in self.keys]
        self.values = [v.index_select(0, selector)[:, :, start:] for v in self.values]
        self.mask = mask[:, start:]
        self.rows = [self.rows[index] for index in keep]


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
