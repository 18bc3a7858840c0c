"""A transformers model ready for inference, and the small rules of loading and decoding it.

Shared by the single-prompt path (``NLPService.complete``) and the batch engine
(``engines.transformers_batch``), so both decode and stop exactly the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from app.domain.generation import FinishReason, ModelKind
from app.services.model_loading import MODEL_LOAD_LOCK

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A tokenizer and model ready for inference."""

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    kind: ModelKind
    prompt_prefix: str
    eos_token_ids: frozenset[int]
    pad_token_id: int | None


def decode_text(loaded: LoadedModel, token_ids: list[int]) -> str:
    """The answer text of ``token_ids`` the way the final result shows it (special tokens dropped, stripped)."""
    text = cast(str, loaded.tokenizer.decode(token_ids, skip_special_tokens=True))
    return text.strip()


def finish_reason(loaded: LoadedModel, new_ids: list[int], max_new_tokens: int) -> FinishReason:
    ended_on_eos = bool(new_ids) and new_ids[-1] in loaded.eos_token_ids
    return "stop" if ended_on_eos or len(new_ids) < max_new_tokens else "length"


def eos_token_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> frozenset[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return frozenset(i for i in ids if isinstance(i, int))


def task_prefix(model: PreTrainedModel, task: str) -> str:
    """T5-style models declare an input prefix per task, e.g. ``summarize: ``."""
    task_params = getattr(model.config, "task_specific_params", None) or {}
    prefix = task_params.get(task, {}).get("prefix", "")
    return prefix if isinstance(prefix, str) else ""


def looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is treated as a folder."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith((".", "~", "/")) or "\\" in source or source.count("/") > 1 or ":" in source


def from_pretrained_cache_first(auto_class: Any, source: str, **kwargs: Any) -> Any:
    """Load from a local folder or the hub cache without touching the network; download only on a miss.

    Without this, a cached hub id still sends HEAD requests, which retry for ~45 s when offline.
    """
    kwargs = {name: value for name, value in kwargs.items() if value is not None}
    with MODEL_LOAD_LOCK:  # from_pretrained changes process-wide torch state (app/services/model_loading.py)
        try:
            return auto_class.from_pretrained(source, local_files_only=True, **kwargs)
        except OSError:
            if os.path.isdir(source):
                raise
        logger.info("%s is not in the Hugging Face cache; trying to download it", source)
        return auto_class.from_pretrained(source, **kwargs)


def describe_failure(exc: Exception, kind: ModelKind) -> str:
    """A short, user-facing reason for a failed load."""
    text = str(exc)
    if isinstance(exc, ValueError) and "Unrecognized configuration class" in text:
        wanted = "a seq2seq (text2text-generation)" if kind == "seq2seq" else "a causal (text-generation)"
        return f"it is not {wanted} model"
    if isinstance(exc, OSError) and ("couldn't connect" in text or "cached files" in text):
        return "it is not a local folder, not in the Hugging Face cache, and could not be downloaded (no internet?)"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first_line[:200]}" if first_line else type(exc).__name__
