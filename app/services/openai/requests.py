"""Request bodies of ``/v1/chat/completions`` and ``/v1/completions`` parsed into our own types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.generation import PARAM_BOUNDS, SEED_MAX, ChatTurn, GenerationParams
from app.domain.text import is_storable
from app.errors import PROMPT_UNSTORABLE
from app.services.openai.errors import (
    EMPTY_PROMPT,
    MODEL_NOT_FOUND,
    NO_USER_MESSAGE,
    ONLY_N_1,
    ONLY_TEXT_CONTENT,
    OUT_OF_RANGE,
    REQUIRED,
    TOO_LONG,
    UNKNOWN_ROLE,
    UNSUPPORTED,
    WRONG_TYPE,
    OpenAIError,
)

MAX_MESSAGES = 256
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 200
MAX_USER_CHARS = 256
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_NEW_TOKENS = int(PARAM_BOUNDS["max_new_tokens"].maximum)
DEFAULT_MAX_NEW_TOKENS = int(PARAM_BOUNDS["max_new_tokens"].default)
DEFAULT_TEMPERATURE = 1.0  # OpenAI's default


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """A parsed ``/v1/chat/completions`` or ``/v1/completions`` request, in our own types."""

    model: str
    prompt: str  # the last user turn (chat) or the prompt (completions)
    turns: tuple[ChatTurn, ...]  # the whole conversation (chat); () for completions
    params: GenerationParams
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


def parse_chat_request(payload: Mapping[str, Any], *, max_chars: int) -> ApiRequest:
    """A chat completions body; ``OpenAIError`` (400) naming the parameter on the first problem."""
    model = _model(payload)
    turns = _turns(payload.get("messages"))
    prompt = next((turn.content for turn in reversed(turns) if turn.role == "user" and turn.content.strip()), None)
    if prompt is None:
        raise OpenAIError(NO_USER_MESSAGE, param="messages")
    if sum(len(turn.content) for turn in turns) > max_chars:
        raise OpenAIError(
            TOO_LONG.format(what="conversation", limit=max_chars), param="messages", code="context_length_exceeded"
        )
    _refuse_unsupported(payload, ("tools", "functions", "tool_choice", "function_call", "audio", "prediction"))
    _refuse_true(payload, ("logprobs",))
    _refuse_non_text_format(payload)
    max_tokens = _max_tokens(payload, ("max_completion_tokens", "max_tokens"))
    return _request(payload, model=model, prompt=prompt.strip(), turns=turns, max_tokens=max_tokens)


def parse_completion_request(payload: Mapping[str, Any], *, max_chars: int) -> ApiRequest:
    """A (legacy) completions body; the prompt takes the same path as a prompt typed on the page."""
    model = _model(payload)
    prompt = _completion_prompt(payload.get("prompt"))
    if len(prompt) > max_chars:
        raise OpenAIError(
            TOO_LONG.format(what="prompt", limit=max_chars), param="prompt", code="context_length_exceeded"
        )
    _refuse_true(payload, ("echo",))
    _refuse_unsupported(payload, ("suffix", "logprobs"))
    best_of = payload.get("best_of")
    if best_of is not None and best_of != 1:
        raise OpenAIError(UNSUPPORTED.format(param="best_of") + " Use best_of 1.", param="best_of")
    max_tokens = _max_tokens(payload, ("max_tokens",))
    return _request(payload, model=model, prompt=prompt.strip(), turns=(), max_tokens=max_tokens)


def _request(
    payload: Mapping[str, Any], *, model: str, prompt: str, turns: tuple[ChatTurn, ...], max_tokens: int
) -> ApiRequest:
    _check_n(payload.get("n"))
    stream = _optional_bool(payload, "stream") or False
    include_usage = False
    options = payload.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise OpenAIError(WRONG_TYPE.format(param="stream_options", expected="an object"), param="stream_options")
        include_usage = _optional_bool(options, "include_usage", prefix="stream_options.") or False
    user = payload.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_CHARS):
        raise OpenAIError(
            WRONG_TYPE.format(param="user", expected=f"a string of at most {MAX_USER_CHARS}"), param="user"
        )
    if user is not None:
        _storable("user", user)
    return ApiRequest(
        model=model,
        prompt=prompt,
        turns=turns,
        params=_params(payload, max_tokens=max_tokens),
        stop=_stop(payload.get("stop")),
        stream=stream,
        include_usage=include_usage and stream,
        user=user or None,
    )


def model_not_found(model: str) -> OpenAIError:
    shown = model if len(model) <= 100 else model[:100] + "…"
    return OpenAIError(MODEL_NOT_FOUND.format(model=shown), status=404, param="model", code="model_not_found")


def _model(payload: Mapping[str, Any]) -> str:
    model = payload.get("model")
    if model is None or model == "":
        raise OpenAIError(REQUIRED.format(param="model"), param="model")
    if not isinstance(model, str):
        raise OpenAIError(WRONG_TYPE.format(param="model", expected="a string"), param="model")
    return model


def _turns(raw: object) -> tuple[ChatTurn, ...]:
    if raw is None:
        raise OpenAIError(REQUIRED.format(param="messages"), param="messages")
    if not isinstance(raw, list):
        raise OpenAIError(WRONG_TYPE.format(param="messages", expected="an array"), param="messages")
    if not raw:
        raise OpenAIError(OUT_OF_RANGE.format(param="messages", expected="a non-empty array"), param="messages")
    if len(raw) > MAX_MESSAGES:
        raise OpenAIError(OUT_OF_RANGE.format(param="messages", expected=f"at most {MAX_MESSAGES}"), param="messages")
    return tuple(_turn(index, item) for index, item in enumerate(raw))


def _turn(index: int, item: object) -> ChatTurn:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise OpenAIError(WRONG_TYPE.format(param=where, expected="an object"), param=where)
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise OpenAIError(UNKNOWN_ROLE.format(param=f"{where}.role", role=role), param=f"{where}.role")
    content = item.get("content")
    if content is None and role == "assistant":
        content = ""
    return ChatTurn(role=ROLES[role], content=_content(f"{where}.content", content))


def _content(where: str, content: object) -> str:
    if isinstance(content, str):
        return _storable(where, content)
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise OpenAIError(ONLY_TEXT_CONTENT.format(param=where), param=where)
            parts.append(part["text"])
        return _storable(where, "".join(parts))
    raise OpenAIError(WRONG_TYPE.format(param=where, expected="a string or an array of text parts"), param=where)


def _completion_prompt(raw: object) -> str:
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        raw = raw[0]
    if raw is None:
        raise OpenAIError(REQUIRED.format(param="prompt"), param="prompt")
    if not isinstance(raw, str):
        raise OpenAIError(
            WRONG_TYPE.format(param="prompt", expected="a string (or an array of one string)"), param="prompt"
        )
    if not raw.strip():
        raise OpenAIError(EMPTY_PROMPT, param="prompt")
    return _storable("prompt", raw)


def _storable(where: str, text: str) -> str:
    """``text``, or a 422 naming the parameter that holds a NUL or an unpaired surrogate."""
    if not is_storable(text):
        raise OpenAIError(f"Invalid value for {where!r}: {PROMPT_UNSTORABLE}", status=422, param=where)
    return text


def _check_n(raw: object) -> None:
    if raw is None:
        return
    if not _is_whole(raw):
        raise OpenAIError(WRONG_TYPE.format(param="n", expected="an integer"), param="n")
    if raw != 1:
        raise OpenAIError(ONLY_N_1, param="n")


def _max_tokens(payload: Mapping[str, Any], names: Sequence[str]) -> int:
    for name in names:  # max_completion_tokens wins over the deprecated max_tokens
        raw = payload.get(name)
        if raw is None:
            continue
        if not _is_whole(raw):
            raise OpenAIError(WRONG_TYPE.format(param=name, expected="an integer"), param=name)
        if raw < 1:
            raise OpenAIError(OUT_OF_RANGE.format(param=name, expected="an integer of at least 1"), param=name)
        return min(int(raw), MAX_NEW_TOKENS)  # capped: the answer then ends with finish_reason "length"
    return DEFAULT_MAX_NEW_TOKENS


def _params(payload: Mapping[str, Any], *, max_tokens: int) -> GenerationParams:
    temperature = _number(payload, "temperature", low=0.0, high=2.0)
    top_p = _number(payload, "top_p", low=0.0, high=1.0)
    seed = payload.get("seed")
    if seed is not None and not _is_whole(seed):
        raise OpenAIError(WRONG_TYPE.format(param="seed", expected="an integer"), param="seed")
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    if temperature == 0 or top_p == 0:
        return GenerationParams(max_new_tokens=max_tokens, do_sample=False)
    return GenerationParams(
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=0,  # OpenAI has no top-k
        do_sample=True,
        seed=None if seed is None else int(seed) % (SEED_MAX + 1),
    )


def _number(payload: Mapping[str, Any], name: str, *, low: float, high: float) -> float | None:
    raw = payload.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise OpenAIError(WRONG_TYPE.format(param=name, expected="a number"), param=name)
    if not low <= raw <= high:  # also refuses NaN
        raise OpenAIError(OUT_OF_RANGE.format(param=name, expected=f"a number from {low:g} to {high:g}"), param=name)
    return float(raw)


def _stop(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise OpenAIError(WRONG_TYPE.format(param="stop", expected="a string or an array of strings"), param="stop")
    if len(values) > MAX_STOP_SEQUENCES or any(len(value) > MAX_STOP_CHARS for value in values):
        expected = f"at most {MAX_STOP_SEQUENCES} strings of at most {MAX_STOP_CHARS} characters"
        raise OpenAIError(OUT_OF_RANGE.format(param="stop", expected=expected), param="stop")
    for value in values:
        _storable("stop", value)
    return tuple(dict.fromkeys(value for value in values if value))


def _optional_bool(payload: Mapping[str, Any], name: str, *, prefix: str = "") -> bool | None:
    raw = payload.get(name)
    if raw is not None and not isinstance(raw, bool):
        raise OpenAIError(WRONG_TYPE.format(param=prefix + name, expected="a boolean"), param=prefix + name)
    return raw


def _refuse_unsupported(payload: Mapping[str, Any], names: Sequence[str]) -> None:
    for name in names:
        if payload.get(name) not in (None, [], {}):
            raise OpenAIError(UNSUPPORTED.format(param=name), param=name)


def _refuse_true(payload: Mapping[str, Any], names: Sequence[str]) -> None:
    for name in names:
        if payload.get(name) not in (None, False):
            raise OpenAIError(UNSUPPORTED.format(param=name), param=name)


def _refuse_non_text_format(payload: Mapping[str, Any]) -> None:
    response_format = payload.get("response_format")
    if response_format is None:
        return
    if not isinstance(response_format, dict) or response_format.get("type") != "text":
        raise OpenAIError(
            UNSUPPORTED.format(param="response_format") + " Only {'type': 'text'}.", param="response_format"
        )


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
