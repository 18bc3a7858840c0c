"""Input parsing for the prompt templates page and API: name and body, checked by the domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from app.errors import InvalidTemplate
from app.services.templates import checked

NAME_INPUT_CHARS = 100
TEMPLATE_NOT_TEXT = "name and body must be text."


class TemplateForm(forms.Form):
    """``name`` and ``body`` exactly as typed; every message comes from app/domain/templates.py."""

    name = forms.CharField(required=False, strip=False)
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            # NUL is refused by the domain check with the same message as everywhere else.
            field.validators = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            cleaned["name"], cleaned["body"] = checked(name=cleaned.get("name") or "", body=cleaned.get("body") or "")
        except InvalidTemplate as exc:
            self.add_error(exc.field, exc.message)
        return cleaned

    def add_domain_error(self, error: InvalidTemplate) -> None:
        """A problem only the store can see (a taken name) shown next to its field."""
        self.add_error(error.field if error.field in self.fields else None, error.message)

    def errors_by_field(self) -> dict[str, str]:
        return {name: " ".join(str(message) for message in messages) for name, messages in self.errors.items()}


def parse_api_template(payload: Mapping[str, Any]) -> tuple[str, str]:
    """``{"name": str, "body": str}`` from a JSON body, checked (``InvalidTemplate`` names the field)."""
    name, body = payload.get("name"), payload.get("body")
    if not isinstance(name, str):
        raise InvalidTemplate(TEMPLATE_NOT_TEXT, field="name")
    if not isinstance(body, str):
        raise InvalidTemplate(TEMPLATE_NOT_TEXT, field="body")
    return checked(name=name, body=body)
