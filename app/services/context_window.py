"""How much conversation fits a model: its context window, and the size of a conversation in its tokens.

* transformers: the tokens the model would really get (``NLPService.encode_prompt``: the chat template of
  a causal model, the joined turns and task prefix of a seq2seq one); the window is the smallest of the
  tokenizer's ``model_max_length`` and the config's position limit.
* llama.cpp: the sidecar's context per slot (``LLAMA_CTX`` / ``LLAMA_SLOTS``), and the conversation as the
  sidecar's own chat template and tokenizer count it (``llama_tokens.chat_token_count``: two loopback
  round trips per try); while the sidecar cannot answer, the character estimate below.
* OpenAI-compatible servers and TGI: nothing says their window, so ``CONVERSATION_CONTEXT_TOKENS``
  (default 4096) and the same character estimate.

The estimate counts ``CHARS_PER_TOKEN`` characters a token, fewer than real tokenizers average on
English (about 4), so it errs towards leaving a turn out rather than overflowing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings

from app.domain.generation import ChatTurn
from app.errors import DomainError
from app.services.engines.llama_tokens import chat_token_count
from app.services.engines.llamacpp import LlamaCppService
from app.services.engines.transformers_service import NLPService
from app.services.model_specs import GenerationService

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT_TOKENS = 4096
CHARS_PER_TOKEN = 3
TURN_OVERHEAD_TOKENS = 8  # role markers and separators a chat template adds around each message
UNBOUNDED = 1_000_000  # tokenizers without a limit report a huge sentinel (1e30): not a real window


@dataclass(frozen=True)
class ContextMeter:
    """A model's window in tokens and how many tokens a conversation takes (``exact``: its own tokenizer)."""

    limit: int
    count: Callable[[Sequence[ChatTurn]], int]
    exact: bool


def estimate_tokens(turns: Sequence[ChatTurn]) -> int:
    return sum(len(turn.content) // CHARS_PER_TOKEN + 1 + TURN_OVERHEAD_TOKENS for turn in turns)


def meter_for(service: GenerationService) -> ContextMeter:
    if isinstance(service, NLPService):
        return _transformers_meter(service)
    if isinstance(service, LlamaCppService):
        config = service.sidecar.config
        return _llama_meter(service, limit=max(1, config.ctx // max(1, config.slots)))
    limit = int(settings.CONVERSATION_CONTEXT_TOKENS or DEFAULT_CONTEXT_TOKENS)
    return ContextMeter(limit=limit, count=estimate_tokens, exact=False)


def _llama_meter(service: LlamaCppService, *, limit: int) -> ContextMeter:
    try:
        base_url = service.sidecar.ensure_started()  # the request needs the sidecar anyway
    except DomainError:
        return ContextMeter(limit=limit, count=estimate_tokens, exact=False)  # the generation reports it

    def count(turns: Sequence[ChatTurn]) -> int:
        try:
            return chat_token_count(base_url, turns)
        except (OSError, ValueError) as exc:
            logger.warning("llama-server could not count a conversation (%s): estimating from its characters", exc)
            return estimate_tokens(turns)

    return ContextMeter(limit=limit, count=count, exact=True)


def _transformers_meter(service: NLPService) -> ContextMeter:
    service.warm_up()  # the request needs the model anyway; its tokenizer measures the conversation
    loaded = service.loaded_model()
    config = loaded.model.config
    candidates = [
        getattr(loaded.tokenizer, "model_max_length", None),
        getattr(config, "max_position_embeddings", None),
        getattr(config, "n_positions", None),
    ]
    limits = [int(value) for value in candidates if isinstance(value, int | float) and 0 < value < UNBOUNDED]

    def count(turns: Sequence[ChatTurn]) -> int:
        last = turns[-1].content if turns else ""
        return int(service.encode_prompt(loaded, last, messages=turns)["input_ids"].shape[-1])

    return ContextMeter(limit=min(limits, default=DEFAULT_CONTEXT_TOKENS), count=count, exact=True)


def fit(meter: ContextMeter, earlier: Sequence[ChatTurn], latest: ChatTurn, *, max_new_tokens: int) -> int:
    """How many of the earliest (user, assistant) pairs of ``earlier`` to leave out so the rest fits.

    The budget is the window minus the answer's ``max_new_tokens``; dropping more pairs never makes a
    conversation longer, so the smallest number that fits is found by bisection (a few tokenizations).
    When even the newest prompt alone does not fit, every earlier pair is left out and the engine
    answers (or refuses) the prompt as it would without a conversation.
    """
    pairs = len(earlier) // 2
    budget = meter.limit - max_new_tokens

    def fits(dropped: int) -> bool:
        return meter.count([*earlier[dropped * 2 :], latest]) <= budget

    if pairs == 0 or fits(0):
        return 0
    low, high = 1, pairs  # fits(low - 1) is false; the answer lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low
