"""Input parsing for ``/compare/`` (one prompt, 2–3 offered models, shared parameters) and ``/diff/``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from app.domain.generation import GenerationParams, check_params_for_task
from app.domain.ids import is_interaction_id
from app.errors import InvalidDiffRequest, InvalidParams, InvalidPrompt, ModelNotOffered
from app.forms.prompt import FORM_PARAM_FIELDS, PromptForm, clean_prompt
from app.services.model_specs import ModelSpec, offered_models, resolve_spec

MIN_MODELS = 2
MAX_MODELS = 3
MODELS_TOO_FEW = "Models: pick at least {minimum} of the offered models to compare (you picked {count})."
MODELS_TOO_MANY = "Models: pick at most {maximum} models to compare (you picked {count})."
MODELS_UNKNOWN = "Models: {model!r} is not an offered model."
MODELS_TWICE = "Models: each model can be picked once ({model!r} was picked twice)."
MODELS_PARAMS = "Models: {model!r} cannot use these parameters: {reason}"
ONLY_ONE_MODEL = (
    "Only one model is offered ({model}), so there is nothing to compare it with. Offer more models with "
    "HF_MODELS (e.g. HF_MODELS=google/flan-t5-small=text2text-generation) and restart the server."
)

DIFF_MISSING = "Pick two answers to diff: /diff/?a=<id>&b=<id> (or select two rows in the history)."
DIFF_PICK_COUNT = "Pick exactly two answers to diff (you picked {count})."
DIFF_TWICE = "Give {name} once (it was given {count} times)."
DIFF_BAD_ID = "{name} must be an interaction id (24 hexadecimal characters)."
DIFF_BOTH_FORMS = "Use either a and b, or pick twice, not both."


class CompareForm(forms.Form):
    """The prompt, the picked models (checkboxes named ``models``) and the parameters they share."""

    prompt = copy.deepcopy(PromptForm.base_fields["prompt"])
    models = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in FORM_PARAM_FIELDS:  # the prompt page's parameter fields, bounds and hints included
            self.fields[name] = copy.deepcopy(PromptForm.base_fields[name])
        self.offered: list[ModelSpec] = offered_models()
        self.fields["prompt"].widget.attrs["maxlength"] = settings.PROMPT_MAX_CHARS
        self.fields["prompt"].validators = []  # clean_prompt refuses NUL with the app's own message
        models = self.fields["models"]
        assert isinstance(models, forms.MultipleChoiceField)
        models.choices = [(spec.id, spec.label) for spec in self.offered]
        models.valid_value = lambda value: True  # type: ignore[method-assign]  # clean_models names bad ones

    @property
    def can_compare(self) -> bool:
        return len(self.offered) >= MIN_MODELS

    @property
    def one_model_notice(self) -> str:
        return "" if self.can_compare else ONLY_ONE_MODEL.format(model=self.offered[0].label)

    @property
    def picked(self) -> list[str]:
        """The checked models: as sent, or the first two offered on a fresh form."""
        if self.is_bound:
            return [str(value) for value in self.data.getlist("models")] if hasattr(self.data, "getlist") else []
        return [spec.id for spec in self.offered[:MIN_MODELS]]

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in FORM_PARAM_FIELDS]

    def clean_prompt(self) -> str:
        try:
            return clean_prompt(self.cleaned_data.get("prompt") or "")
        except InvalidPrompt as exc:
            raise forms.ValidationError(exc.message, code="invalid_prompt") from None

    def clean_models(self) -> list[str]:
        picked = [str(value).strip() for value in self.cleaned_data.get("models") or []]
        if not self.can_compare:
            raise forms.ValidationError(self.one_model_notice, code="one_model")
        seen: set[str] = set()
        for model in picked:
            try:
                resolve_spec(model)
            except ModelNotOffered:
                raise forms.ValidationError(MODELS_UNKNOWN.format(model=model[:80]), code="unknown") from None
            if model in seen:
                raise forms.ValidationError(MODELS_TWICE.format(model=model[:80]), code="twice")
            seen.add(model)
        if len(picked) < MIN_MODELS:
            raise forms.ValidationError(MODELS_TOO_FEW.format(minimum=MIN_MODELS, count=len(picked)), code="few")
        if len(picked) > MAX_MODELS:
            raise forms.ValidationError(MODELS_TOO_MANY.format(maximum=MAX_MODELS, count=len(picked)), code="many")
        return picked

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = {name: cleaned.get(name) for name in FORM_PARAM_FIELDS if cleaned.get(name) not in (None, "")}
        try:
            params = GenerationParams.from_mapping(raw)
        except InvalidParams as exc:
            for name, message in exc.errors.items():
                self.add_error(name if name in self.fields else None, message)
            return cleaned
        cleaned["params"] = params
        for model in cleaned.get("models") or []:  # beam search is seq2seq only: every picked model must take it
            try:
                check_params_for_task(params, resolve_spec(model).task)
            except InvalidParams as exc:
                reason = " ".join(exc.errors.values())
                self.add_error("models", MODELS_PARAMS.format(model=model[:80], reason=reason))
                break
        return cleaned

    def errors_by_field(self) -> dict[str, str]:
        return {name: " ".join(str(message) for message in messages) for name, messages in self.errors.items()}


@dataclass(frozen=True)
class DiffPair:
    """The two interaction ids a diff compares (the same id twice is allowed: all equal)."""

    a: str
    b: str


def parse_diff_query(query: QueryDict) -> DiffPair:
    """``?a=<id>&b=<id>`` or, from the history's checkboxes, ``?pick=<id>&pick=<id>``.

    Nothing given: 400; a wrong count or a malformed id: 422, each with a sentence that says what to send.
    """
    picks = [value.strip() for value in query.getlist("pick") if value.strip()]
    given = {name: [value.strip() for value in query.getlist(name)] for name in ("a", "b")}
    if any(given.values()) and picks:
        raise InvalidDiffRequest(DIFF_BOTH_FORMS)
    if picks:
        if len(picks) != 2:
            raise InvalidDiffRequest(DIFF_PICK_COUNT.format(count=len(picks)))
        ids = [_checked_id("pick", value) for value in picks]
        return DiffPair(ids[0], ids[1])
    if not any(given.values()):
        raise InvalidDiffRequest(DIFF_MISSING, status=400)
    for name, values in given.items():
        if len(values) > 1:
            raise InvalidDiffRequest(DIFF_TWICE.format(name=name, count=len(values)))
        if not values or not values[0]:
            raise InvalidDiffRequest(DIFF_MISSING, status=400)
    return DiffPair(_checked_id("a", given["a"][0]), _checked_id("b", given["b"][0]))


def _checked_id(name: str, value: str) -> str:
    if not is_interaction_id(value):
        raise InvalidDiffRequest(DIFF_BAD_ID.format(name=name))
    return value.lower()
