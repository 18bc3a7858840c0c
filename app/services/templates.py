"""Prompt templates of one visitor: list, read, create, edit, delete (checked by app/domain/templates.py)."""

from __future__ import annotations

from django.conf import settings

from app.domain.interaction import Scope
from app.domain.templates import PromptTemplate, check_body, check_name
from app.services import mongo_templates
from app.services.mongo_repo import get_repository


def checked(*, name: str, body: str) -> tuple[str, str]:
    """The name and body as stored, or ``InvalidTemplate`` naming the field and the place."""
    return check_name(name), check_body(body, max_chars=settings.PROMPT_MAX_CHARS)


def list_templates(*, scope: Scope) -> list[PromptTemplate]:
    return mongo_templates.list_templates(get_repository(), scope=scope)


def get_template(*, scope: Scope, template_id: str) -> PromptTemplate:
    return mongo_templates.get_template(get_repository(), template_id, scope=scope)


def create_template(*, scope: Scope, name: str, body: str) -> PromptTemplate:
    name, body = checked(name=name, body=body)
    return mongo_templates.create_template(get_repository(), scope=scope, name=name, body=body)


def update_template(*, scope: Scope, template_id: str, name: str, body: str) -> PromptTemplate:
    name, body = checked(name=name, body=body)
    return mongo_templates.update_template(get_repository(), template_id, scope=scope, name=name, body=body)


def delete_template(*, scope: Scope, template_id: str) -> PromptTemplate:
    return mongo_templates.delete_template(get_repository(), template_id, scope=scope)
