"""Input parsing for the prompt form and the JSON API: everything a visitor sends is checked here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings

from app.errors import PROMPT_EMPTY, PROMPT_NOT_TEXT, InvalidParams, InvalidPrompt
from app.services.interactions import clean_prompt
from app.services.nlp_service import GenerationParams

# The generation parameters the prompt form offers (the API accepts every GenerationParams field).
FORM_PARAM_FIELDS: tuple[str, ...] = ("max_new_tokens", "temperature", "top_p", "do_sample")


@dataclass(frozen=True)
class PromptInput:
    prompt: str
    params: GenerationParams


class PromptForm(forms.Form):
    prompt = forms.CharField(
        strip=False,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autofocus": True, "placeholder": "Ask the model anything…"}),
    )
    max_new_tokens = forms.CharField(required=False, widget=forms.NumberInput(attrs={"min": 1, "max": 1024}))
    temperature = forms.CharField(required=False, widget=forms.NumberInput(attrs={"min": 0.01, "max": 2, "step": 0.05}))
    top_p = forms.CharField(required=False, widget=forms.NumberInput(attrs={"min": 0.01, "max": 1, "step": 0.05}))
    do_sample = forms.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].widget.attrs["maxlength"] = settings.PROMPT_MAX_CHARS

    def clean_prompt(self) -> str:
        try:
            return clean_prompt(self.cleaned_data.get("prompt") or "")
        except InvalidPrompt as exc:
            raise forms.ValidationError(exc.message, code="invalid_prompt") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = {name: cleaned.get(name) for name in FORM_PARAM_FIELDS if cleaned.get(name) not in (None, "")}
        try:
            cleaned["params"] = GenerationParams.from_mapping(raw)
        except InvalidParams as exc:
            for name, message in exc.errors.items():
                self.add_error(name if name in self.fields else None, message)
        return cleaned

    def to_input(self) -> PromptInput:
        return PromptInput(prompt=self.cleaned_data["prompt"], params=self.cleaned_data["params"])


def parse_api_prompt(payload: Mapping[str, Any]) -> PromptInput:
    """Validate a decoded ``POST /api/generate`` body: ``{"prompt": str, "params": {…}}``."""
    unknown = sorted(set(payload) - {"prompt", "params"})
    if unknown:
        raise InvalidParams({key: "Unknown field." for key in unknown})
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidPrompt(PROMPT_NOT_TEXT if prompt is not None else PROMPT_EMPTY)
    params = payload.get("params", {})
    if not isinstance(params, Mapping):
        raise InvalidParams({"params": "params must be a JSON object."})
    return PromptInput(prompt=clean_prompt(prompt), params=GenerationParams.from_mapping(params))
