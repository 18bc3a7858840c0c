"""The OpenAI protocol as an engine sees it: our parameters as request fields, upstream errors as ours, SSE lines.

Pure functions (no client, no threads) shared by the ``openai`` and ``llamacpp`` engines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai

from app.domain.generation import FinishReason, GenerationParams
from app.errors import DomainError, InvalidPrompt, ModelUnavailable, TooManyRequests

ApiStyle = Literal["chat", "completions"]
FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "eos": "stop"}
UPSTREAM_BUSY = "The model server {url} is busy (HTTP 429). Please try again in {seconds} s."
UPSTREAM_FAILED = "The model server {url} did not answer: {reason}. Check OPENAI_BASE_URL, or that the server runs."
UPSTREAM_TIMEOUT = "The model server {url} took longer than {seconds} s. Please try again."
UPSTREAM_REFUSED = "The model server {url} refused the request: {reason}."


class UpstreamStreamError(Exception):
    """The server reported an error inside the event stream (after the 200 response)."""


class GenerationDeadline(Exception):
    """The whole generation took longer than the timeout (each read was quick enough)."""


@dataclass(frozen=True)
class UpstreamCall:
    """One request as the OpenAI API sees it: the standard fields and the server-specific extras."""

    fields: dict[str, Any]
    extra_body: dict[str, Any]


def openai_parameters(
    params: GenerationParams, *, stop: Sequence[str] = (), extended_sampling: bool = False
) -> UpstreamCall:
    """Our decoding settings as OpenAI API fields.

    ``max_new_tokens`` → ``max_tokens``; greedy (``do_sample`` off) → ``temperature=0`` (and top_p 1);
    sampling → ``temperature`` and ``top_p``; ``seed`` when set; ``stop`` sequences when given.
    ``extended_sampling`` (llama-server, vLLM) adds ``top_k``, ``repeat_penalty``/``repetition_penalty``
    and ``min_p=0``, so a sampled answer uses the same filters as transformers (llama.cpp's own defaults
    are top_k 40 and min_p 0.05).
    """
    fields: dict[str, Any] = {"max_tokens": params.max_new_tokens}
    extra: dict[str, Any] = {}
    if params.do_sample:
        fields["temperature"] = params.temperature
        fields["top_p"] = params.top_p
    else:
        fields["temperature"] = 0.0
        fields["top_p"] = 1.0
    if params.seed is not None:
        fields["seed"] = params.seed
    stops = list(stop) or list(getattr(params, "stop", None) or ())
    if stops:
        fields["stop"] = stops[:4]  # the API allows at most 4
    if extended_sampling:
        extra["top_k"] = params.top_k if params.do_sample else 1
        extra["min_p"] = 0.0
        if params.repetition_penalty != 1.0:
            extra["repeat_penalty"] = params.repetition_penalty
            extra["repetition_penalty"] = params.repetition_penalty
    return UpstreamCall(fields=fields, extra_body=extra)


def upstream_error(exc: Exception, *, url: str, timeout: float) -> DomainError:
    """One clear domain error for whatever the SDK raised (never a traceback for the visitor)."""
    if isinstance(exc, openai.APITimeoutError | GenerationDeadline):
        return ModelUnavailable(UPSTREAM_TIMEOUT.format(url=url, seconds=_whole(timeout)))
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(UPSTREAM_FAILED.format(url=url, reason=f"cannot connect ({_first_line(exc)})"))
    if isinstance(exc, UpstreamStreamError):
        return ModelUnavailable(UPSTREAM_FAILED.format(url=url, reason=_first_line(exc)))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            seconds = retry_after_seconds(exc.response.headers.get("retry-after"))
            return TooManyRequests(UPSTREAM_BUSY.format(url=url, seconds=seconds), retry_after=seconds)
        if status >= 500:
            return ModelUnavailable(UPSTREAM_FAILED.format(url=url, reason=f"HTTP {status}: {_first_line(exc)}"))
        if status in (401, 403, 404):
            return ModelUnavailable(UPSTREAM_FAILED.format(url=url, reason=f"HTTP {status}: {_first_line(exc)}"))
        return InvalidPrompt(UPSTREAM_REFUSED.format(url=url, reason=f"HTTP {status}: {_first_line(exc)}"))
    return ModelUnavailable(UPSTREAM_FAILED.format(url=url, reason=f"{type(exc).__name__}: {_first_line(exc)}"))


def retry_after_seconds(header: str | None, default: int = 1) -> int:
    """A whole number of seconds from a Retry-After header (seconds form; anything else → ``default``)."""
    try:
        value = float(header) if header else float(default)
    except ValueError:
        return default
    return max(1, math.ceil(value)) if math.isfinite(value) else default


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _whole(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.1f}"


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``text/event-stream`` body, up to ``data: [DONE]``.

    Parsed here with ``json.loads`` rather than through the SDK's typed chunk objects: building those
    costs about 0.3 ms of CPU per token, which on a small machine is taken from the model server itself.
    """
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


def choice_text(choice: dict[str, Any], api: ApiStyle) -> str:
    if api == "completions":
        return str(choice.get("text") or "")
    return str((choice.get("delta") or {}).get("content") or "")


def stream_error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
