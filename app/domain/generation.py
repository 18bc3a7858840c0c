"""Generation parameters (validated once, at the edge) and what one generation produced.

Shared by the forms, the engines, the record and the APIs, so each of them speaks the same types.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from app.errors import UNSUPPORTED_TASK, InvalidParams, UnsupportedTask
from django_hf_ml.choices import ALL_TASK_NAMES, CAUSAL_TASK, normalize_task

# --- Tasks -------------------------------------------------------------------------------------

ModelKind = Literal["seq2seq", "causal"]


def validate_task(task: str) -> str:
    """Return the normalized task name or raise ``UnsupportedTask`` listing the supported ones."""
    normalized = normalize_task(task)
    if normalized is None:
        raise UnsupportedTask(UNSUPPORTED_TASK.format(task=task, supported=", ".join(ALL_TASK_NAMES)))
    return normalized


def model_kind(task: str) -> ModelKind:
    """Which model family a (validated) task needs."""
    return "causal" if validate_task(task) == CAUSAL_TASK else "seq2seq"


# --- Generation parameters ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParamBound:
    """Allowed range of one numeric generation parameter (inclusive unless ``exclusive_minimum``)."""

    kind: type[int] | type[float]
    minimum: float
    maximum: float
    default: float
    exclusive_minimum: bool = False

    @property
    def is_whole(self) -> bool:
        return self.kind is int

    def contains(self, value: float) -> bool:
        above_minimum = value > self.minimum if self.exclusive_minimum else value >= self.minimum
        return above_minimum and value <= self.maximum

    def error_message(self, name: str) -> str:
        noun = "a whole number" if self.is_whole else "a number"
        low, high = format_number(self.minimum), format_number(self.maximum)
        if self.exclusive_minimum:
            return f"{name} must be {noun} greater than {low} and at most {high}."
        return f"{name} must be {noun} between {low} and {high}."


SEED_MAX = 2**31 - 1
PARAM_BOUNDS: dict[str, ParamBound] = {
    "max_new_tokens": ParamBound(int, 1, 1024, 64),
    "temperature": ParamBound(float, 0.0, 2.0, 0.7, exclusive_minimum=True),
    "top_p": ParamBound(float, 0.0, 1.0, 1.0, exclusive_minimum=True),
    "top_k": ParamBound(int, 0, 1000, 50),
    "repetition_penalty": ParamBound(float, 1.0, 2.0, 1.0),
    "num_beams": ParamBound(int, 1, 8, 1),
}
SEED_BOUND = ParamBound(int, 0, SEED_MAX, 0)
PARAM_NAMES: tuple[str, ...] = (*PARAM_BOUNDS, "do_sample", "seed")

TRUE_WORDS = frozenset({"on", "true", "1", "yes"})
FALSE_WORDS = frozenset({"off", "false", "0", "no", ""})
DO_SAMPLE_ERROR = "do_sample must be true or false."
SEED_ERROR = f"seed must be a whole number between 0 and {SEED_MAX}, or empty."
UNKNOWN_PARAM_ERROR = "Unknown parameter."
BEAMS_WITH_SAMPLING_ERROR = "num_beams must be 1 when do_sample is on."
BEAMS_FOR_CAUSAL_ERROR = "num_beams must be 1 for text-generation models."


class _BadValue(ValueError):
    """A single value failed to parse; the caller turns it into a field error."""


@dataclass(frozen=True)
class GenerationParams:
    """Validated decoding settings for one request."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0
    num_beams: int = 1
    do_sample: bool = False
    seed: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, ignore_unknown: bool = False) -> GenerationParams:
        """Parse form/JSON values; raise ``InvalidParams`` with one message per bad field.

        Missing keys, ``None`` and empty strings take the default. Pass ``ignore_unknown=True``
        to parse a whole form (prompt, CSRF token…) without listing the other keys as errors.
        """
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, bound in PARAM_BOUNDS.items():
            _parse_into(values, errors, name, data, partial(_parse_bounded, name=name, bound=bound))
        _parse_into(values, errors, "do_sample", data, _parse_bool)
        _parse_into(values, errors, "seed", data, _parse_seed)
        if not ignore_unknown:
            errors.update({key: UNKNOWN_PARAM_ERROR for key in data if key not in PARAM_NAMES})
        if not errors and values.get("do_sample") and values.get("num_beams", 1) > 1:
            errors["num_beams"] = BEAMS_WITH_SAMPLING_ERROR
        if errors:
            raise InvalidParams(errors)
        return cls(**values)

    def to_dict(self) -> dict[str, int | float | bool | None]:
        return dataclasses.asdict(self)

    def generate_kwargs(self) -> dict[str, int | float | bool]:
        """Keyword arguments for ``model.generate``; sampling knobs only when sampling."""
        kwargs: dict[str, int | float | bool] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


def check_params_for_task(params: GenerationParams, task: str) -> None:
    """Reject settings the task's model family cannot use (beam search is seq2seq only)."""
    if params.num_beams > 1 and model_kind(task) == "causal":
        raise InvalidParams({"num_beams": BEAMS_FOR_CAUSAL_ERROR})


def _parse_into(
    values: dict[str, Any],
    errors: dict[str, str],
    name: str,
    data: Mapping[str, object],
    parse: Callable[[object], object],
) -> None:
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return
    try:
        values[name] = parse(raw)
    except _BadValue as exc:
        errors[name] = str(exc)


def _parse_bounded(raw: object, name: str, bound: ParamBound) -> int | float:
    message = bound.error_message(name)
    number = _to_number(raw, message)
    if bound.is_whole:
        if not number.is_integer():
            raise _BadValue(message)
        number = int(number)
    if not bound.contains(number):
        raise _BadValue(message)
    return number


def _parse_seed(raw: object) -> int:
    try:
        return int(_parse_bounded(raw, "seed", SEED_BOUND))
    except _BadValue:
        raise _BadValue(SEED_ERROR) from None


def _to_number(raw: object, message: str) -> float:
    """A finite float from an int, float or numeric string; bools are rejected."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _BadValue(message)
    try:
        number = float(raw)
    except ValueError:
        raise _BadValue(message) from None
    if not math.isfinite(number):
        raise _BadValue(message)
    return number


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _BadValue(DO_SAMPLE_ERROR)


def format_number(value: float) -> str:
    """A number as a person writes it: ``1`` rather than ``1.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


# --- Result ------------------------------------------------------------------------------------

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation: ``system``, ``user`` or ``assistant``, and its text."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


Turns = Sequence[ChatTurn]


def join_turns(turns: Turns) -> str:
    """A conversation as one prompt for models without a chat template (seq2seq): ``role: text`` lines.

    A single user turn is just its text, so a one-message conversation is the same prompt as the page's.
    """
    if len(turns) == 1 and turns[0].role == "user":
        return turns[0].content
    return "\n".join([*(f"{turn.role}: {turn.content}" for turn in turns), "assistant:"])


@dataclass(frozen=True)
class Ask:
    """What a visitor asked for."""

    prompt: str
    params: GenerationParams
    model: str | None = None
    regenerated_from: str | None = None
    use_cache: bool = True  # Regenerate asks the model again even for a deterministic request
    # A client of the OpenAI-compatible API sends the whole conversation (``prompt`` is its last user
    # turn), strings that end the answer (cut before them), and says who it is: source, key, end user.
    messages: tuple[ChatTurn, ...] = ()
    stop: tuple[str, ...] = ()
    source: str | None = None
    api_key: str | None = None
    end_user: str | None = None
    # The conversation this ask continues (app/services/conversations.py): the thread, the turn it
    # follows, how many earlier turns were left out to fit the context, and whether the record keeps
    # ``messages`` (the /v1 wire conversation; a page follow-up rebuilds its thread from the records).
    conversation_id: str | None = None
    parent_id: str | None = None
    turns_dropped: int = 0
    record_messages: bool = True
    # One of the answers of a comparison (``/compare/``), whose prompts the rate limit already counted
    # all at once (a comparison of N models is N prompts).
    comparison_id: str | None = None
    rate_counted: bool = False

    def record_links(self) -> dict[str, Any]:
        """The records a new record points to: the answer it regenerates, the comparison it belongs to."""
        return {"regenerated_from": self.regenerated_from, "comparison_id": self.comparison_id}

    def record_params(self) -> dict[str, Any]:
        """The parameters a record keeps: the decoding settings, and the stop strings when there are any."""
        params: dict[str, Any] = self.params.to_dict()
        if self.stop:
            params["stop"] = list(self.stop)
        return params


@dataclass(frozen=True)
class GenerationResult:
    """What one ``generate()`` call produced and how long each part took."""

    text: str
    model: str
    task: str
    prompt_tokens: int
    output_tokens: int
    load_seconds: float
    generate_seconds: float
    total_seconds: float
    finish_reason: FinishReason

    def to_dict(self) -> dict[str, str | int | float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Completion:
    """The decoded output of one prompt, before timings are added."""

    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: FinishReason
