"""Reply bodies, stream chunks and usage in OpenAI's shape, built from our records."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.generation import GenerationParams
from app.domain.interaction import Interaction

OBJECT_CHAT = "chat.completion"
OBJECT_CHAT_CHUNK = "chat.completion.chunk"
OBJECT_TEXT = "text_completion"
OWNED_BY = "django_hf_ml"
SSE_DONE = "data: [DONE]\n\n"
SSE_KEEPALIVE = ": keep-alive\n\n"


# --- responses ----------------------------------------------------------------------------------

FinishReason = Literal["stop", "length"]


def finish_reason_of(interaction: Interaction, params: GenerationParams) -> FinishReason:
    """``length`` when the answer ran into its token limit, else ``stop`` (end of text or a stop string)."""
    if interaction.finish_reason in ("stop", "length"):
        return interaction.finish_reason  # type: ignore[return-value]
    return "length" if interaction.output_tokens >= params.max_new_tokens else "stop"


def usage(interaction: Interaction) -> dict[str, int]:
    return {
        "prompt_tokens": interaction.prompt_tokens,
        "completion_tokens": interaction.output_tokens,
        "total_tokens": interaction.prompt_tokens + interaction.output_tokens,
    }


def model_object(model_id: str, *, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNED_BY}


def models_list(model_ids: Sequence[str], *, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model_id, created=created) for model_id in model_ids]}


def completion_body(
    *,
    chat: bool,
    id: str,
    created: int,
    model: str,
    interaction: Interaction,
    params: GenerationParams,  # noqa: A002
) -> dict[str, Any]:
    """A whole answer: ``chat.completion`` (its text as the assistant message) or ``text_completion``."""
    content: dict[str, Any] = (
        {"message": {"role": "assistant", "content": interaction.output, "refusal": None}}
        if chat
        else {"text": interaction.output}
    )
    choice = {"index": 0, **content, "logprobs": None, "finish_reason": finish_reason_of(interaction, params)}
    return {
        "id": id,
        "object": OBJECT_CHAT if chat else OBJECT_TEXT,
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(interaction),
    }


@dataclass(frozen=True)
class ChunkMaker:
    """Builds the chunks of one streamed answer (``chat.completion.chunk`` or ``text_completion``)."""

    id: str
    created: int
    model: str
    chat: bool
    include_usage: bool

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": OBJECT_CHAT_CHUNK if self.chat else OBJECT_TEXT,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None  # every chunk but the last one, as OpenAI sends them
        return chunk

    def _choice(self, text: str | None, *, finish_reason: str | None, role: bool = False) -> dict[str, Any]:
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def start(self) -> dict[str, Any] | None:
        """The opening chunk of a chat stream (the assistant role); completions have none."""
        return self._chunk([self._choice("", finish_reason=None, role=True)]) if self.chat else None

    def text(self, piece: str) -> dict[str, Any]:
        return self._chunk([self._choice(piece, finish_reason=None)])

    def finish(self, reason: FinishReason) -> dict[str, Any]:
        return self._chunk([self._choice(None if self.chat else "", finish_reason=reason)])

    def usage(self, interaction: Interaction) -> dict[str, Any]:
        """The extra last chunk of ``stream_options.include_usage``: no choices, the token counts."""
        chunk = self._chunk([])
        chunk["usage"] = usage(interaction)
        return chunk


def sse_data(payload: Mapping[str, Any]) -> str:
    """One ``data:`` event of an OpenAI stream (JSON never contains a raw newline)."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"
