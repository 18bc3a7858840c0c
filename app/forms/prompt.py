"""Input parsing for the prompt form and the JSON API: everything a visitor sends is checked here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator

from app.domain.generation import PARAM_BOUNDS, SEED_MAX, Ask, GenerationParams, check_params_for_task, format_number
from app.domain.text import check_storable
from app.errors import PROMPT_EMPTY, PROMPT_NOT_TEXT, PROMPT_TOO_LONG, InvalidParams, InvalidPrompt, ModelNotOffered
from app.services.model_specs import offered_models, resolve_spec

# The generation parameters the prompt form offers (the API accepts the same GenerationParams fields).
FORM_PARAM_FIELDS: tuple[str, ...] = (
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "num_beams",
    "seed",
    "do_sample",
)
MODEL_NOT_TEXT = "model must be the id of an offered model."


def clean_prompt(text: str) -> str:
    """The prompt as it will be sent to the model, or ``InvalidPrompt`` with the reason."""
    if not text.strip():
        raise InvalidPrompt(PROMPT_EMPTY)
    check_storable(text)
    limit = settings.PROMPT_MAX_CHARS
    if len(text) > limit:
        raise InvalidPrompt(PROMPT_TOO_LONG.format(limit=limit))
    return text.strip()


def _number_input(name: str, step: float | str) -> forms.CharField:
    """A text field rendered as ``<input type=number>`` with the server-side bounds as hints."""
    bound = PARAM_BOUNDS[name]
    low = bound.minimum + (0.01 if bound.exclusive_minimum else 0)
    attrs = {
        "min": format_number(low),
        "max": format_number(bound.maximum),
        "step": step,
        "placeholder": format_number(bound.default),
    }
    return forms.CharField(required=False, widget=forms.NumberInput(attrs=attrs))


class PromptForm(forms.Form):
    prompt = forms.CharField(
        strip=False,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autofocus": True, "placeholder": "Ask the model anything…"}),
    )
    model = forms.CharField(required=False, widget=forms.Select())
    max_new_tokens = _number_input("max_new_tokens", 1)
    temperature = _number_input("temperature", 0.05)
    top_p = _number_input("top_p", 0.05)
    top_k = _number_input("top_k", 1)
    repetition_penalty = _number_input("repetition_penalty", 0.05)
    num_beams = _number_input("num_beams", 1)
    seed = forms.CharField(
        required=False, widget=forms.NumberInput(attrs={"min": 0, "max": SEED_MAX, "step": 1, "placeholder": "random"})
    )
    do_sample = forms.BooleanField(required=False)
    # The conversation the prompt continues: after the answer ``parent_id``, or beside ``sibling_of`` (edit &
    # resend). Checked by app/services/conversations.py; the page shows them in the "Follow-up to" marker.
    parent_id = forms.CharField(required=False, widget=forms.HiddenInput())
    sibling_of = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prompt = self.fields["prompt"]
        prompt.widget.attrs["maxlength"] = settings.PROMPT_MAX_CHARS
        # NUL is refused by clean_prompt with the same message as on every other endpoint.
        prompt.validators = [v for v in prompt.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.fields["model"].widget.choices = [(spec.id, spec.label) for spec in offered_models()]

    @property
    def param_fields(self) -> list[forms.BoundField]:
        """The fields under "Parameters": the model and the decoding settings (not the prompt, not hidden ones)."""
        return [field for field in self if field.name != "prompt" and not field.is_hidden]

    def clean_model(self) -> str | None:
        model = (self.cleaned_data.get("model") or "").strip()
        try:
            return resolve_spec(model).id if model else None
        except ModelNotOffered as exc:
            raise forms.ValidationError(exc.message, code="model_not_offered") from None

    def clean_prompt(self) -> str:
        try:
            return clean_prompt(self.cleaned_data.get("prompt") or "")
        except InvalidPrompt as exc:
            raise forms.ValidationError(exc.message, code="invalid_prompt") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = {name: cleaned.get(name) for name in FORM_PARAM_FIELDS if cleaned.get(name) not in (None, "")}
        try:
            params = GenerationParams.from_mapping(raw)
            if "model" not in self.errors:
                check_params_for_task(params, resolve_spec(cleaned.get("model")).task)
            cleaned["params"] = params
        except InvalidParams as exc:
            for name, message in exc.errors.items():
                self.add_error(name if name in self.fields else None, message)
        return cleaned

    def to_ask(self) -> Ask:
        """What the visitor asked for, once ``is_valid()``."""
        return Ask(
            prompt=self.cleaned_data["prompt"], params=self.cleaned_data["params"], model=self.cleaned_data["model"]
        )


def initial_from_interaction(prompt: str, params: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Form values that reuse an earlier prompt with its parameters and model (to edit and send again)."""
    initial: dict[str, Any] = {"prompt": prompt, "model": model}
    initial.update({name: params[name] for name in FORM_PARAM_FIELDS if params.get(name) is not None})
    return initial


def parse_api_prompt(payload: Mapping[str, Any]) -> Ask:
    """Validate a decoded ``POST /api/generate`` body: ``{"prompt": str, "params": {…}}``."""
    unknown = sorted(set(payload) - {"prompt", "params", "model"})
    if unknown:
        raise InvalidParams({key: "Unknown field." for key in unknown})
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidPrompt(PROMPT_NOT_TEXT if prompt is not None else PROMPT_EMPTY)
    params = payload.get("params", {})
    if not isinstance(params, Mapping):
        raise InvalidParams({"params": "params must be a JSON object."})
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidParams({"model": MODEL_NOT_TEXT})
    try:
        spec = resolve_spec(model or None)
    except ModelNotOffered as exc:
        raise InvalidParams({"model": exc.message}) from None
    parsed = GenerationParams.from_mapping(params)
    check_params_for_task(parsed, spec.task)
    return Ask(prompt=clean_prompt(prompt), params=parsed, model=spec.id if model else None)
