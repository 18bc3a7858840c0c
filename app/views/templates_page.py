"""Prompt templates: ``/templates/`` lists, creates, edits and deletes them; ``/api/templates`` for the box.

Every URL renders a full page when opened directly and a fragment for htmx (``Vary: HX-Request``);
without JavaScript each form posts and redirects back to the list. A bad name or body is a 422 with
the message next to the field and what was typed kept; another visitor's template is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from app.domain.templates import PromptTemplate
from app.errors import InvalidTemplate, StoreUnavailable
from app.forms.templates import TemplateForm, parse_api_template
from app.services import templates
from app.views._htmx import HtmxHttpRequest, htmx_action, renders_problems, vary_on_htmx
from app.views._visitor import visitor_scope
from app.views.api import json_body

PAGE = "app/templates.html"
NOTICE_KEY = "templates_notice"


def template_json(template: PromptTemplate) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "body": template.body,
        "variables": list(template.variables),
        "updated_at": template.updated_at.isoformat().replace("+00:00", "Z"),
    }


def _page_context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"items": [], "problem": None, "form": TemplateForm(), **extra}
    try:
        context["items"] = templates.list_templates(scope=visitor_scope(request))
    except StoreUnavailable as exc:
        context["problem"] = exc.message
    return context


def _saved(request: HtmxHttpRequest, text: str) -> HttpResponse:
    if request.htmx:
        context = _page_context(request, notice=text)
        return render(request, f"{PAGE}#manager", context)
    request.session[NOTICE_KEY] = text
    return HttpResponseRedirect(reverse("app:templates"), status=303)


def _invalid(request: HtmxHttpRequest, form: TemplateForm, *, editing: str | None = None) -> HttpResponse:
    """422 with the form as typed and the message next to its field."""
    fragment = "edit-form" if editing else "create-form"
    if request.htmx:  # the form alone, in place of the form (its target is the whole manager)
        response = render(request, f"{PAGE}#{fragment}", {"form": form, "editing": editing}, status=422)
        return reswap(retarget(response, "#template-edit" if editing else "#template-create"), "outerHTML")
    context = _page_context(request, editing=editing)
    context["edit_form" if editing else "form"] = form
    return render(request, PAGE, context, status=422)


@require_http_methods(["GET", "POST"])
@vary_on_htmx
@renders_problems(PAGE, page_context=_page_context)
def templates_page(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the list and an empty form; POST: create one."""
    if request.method == "GET":
        context = _page_context(request, notice=request.session.pop(NOTICE_KEY, ""))
        return render(request, PAGE, context, status=503 if context["problem"] else 200)
    form = TemplateForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form)
    try:
        created = templates.create_template(
            scope=visitor_scope(request), name=form.cleaned_data["name"], body=form.cleaned_data["body"]
        )
    except InvalidTemplate as exc:
        form.add_domain_error(exc)
        return _invalid(request, form)
    return _saved(request, f"Saved “/{created.name}”.")


@require_http_methods(["GET", "POST"])
@vary_on_htmx
@renders_problems(PAGE, page_context=_page_context)
def template_detail(request: HtmxHttpRequest, template_id: str) -> HttpResponse:
    """GET: the edit form (a page, or the fragment that replaces the row); POST: save the changes."""
    scope = visitor_scope(request)
    if request.method == "GET":
        found = templates.get_template(scope=scope, template_id=template_id)
        form = TemplateForm(initial={"name": found.name, "body": found.body})
        if request.htmx:
            return render(request, f"{PAGE}#edit-form", {"form": form, "editing": found.id})
        return render(request, PAGE, _page_context(request, editing=found.id, edit_form=form))
    form = TemplateForm(request.POST)
    if not form.is_valid():
        templates.get_template(scope=scope, template_id=template_id)  # a foreign id is a 404 before a 422
        return _invalid(request, form, editing=template_id)
    try:
        saved = templates.update_template(
            scope=scope, template_id=template_id, name=form.cleaned_data["name"], body=form.cleaned_data["body"]
        )
    except InvalidTemplate as exc:
        form.add_domain_error(exc)
        return _invalid(request, form, editing=template_id)
    return _saved(request, f"Saved “/{saved.name}”.")


@htmx_action(PAGE, page_context=_page_context)
def delete_template(request: HtmxHttpRequest, template_id: str) -> HttpResponse:
    deleted = templates.delete_template(scope=visitor_scope(request), template_id=template_id)
    return _saved(request, f"Deleted “/{deleted.name}”.")


@require_http_methods(["GET", "POST"])
def api_templates(request: HttpRequest) -> JsonResponse:
    """GET: ``{"templates": [...]}`` (the prompt box's ``/name`` list); POST ``{"name", "body"}`` → 201."""
    scope = visitor_scope(request)
    if request.method == "GET":
        return JsonResponse({"templates": [template_json(item) for item in templates.list_templates(scope=scope)]})
    payload = json_body(request)
    if isinstance(payload, JsonResponse):
        return payload
    name, body = parse_api_template(payload)
    return JsonResponse(template_json(templates.create_template(scope=scope, name=name, body=body)), status=201)


@require_http_methods(["GET", "PUT", "DELETE"])
def api_template(request: HttpRequest, template_id: str) -> HttpResponse:
    """GET / PUT ``{"name", "body"}`` / DELETE (204) one template; another visitor's is a 404."""
    scope = visitor_scope(request)
    if request.method == "DELETE":
        templates.delete_template(scope=scope, template_id=template_id)
        return HttpResponse(status=204)
    if request.method == "PUT":
        templates.get_template(scope=scope, template_id=template_id)  # a foreign id: 404 whatever the body
        payload = json_body(request)
        if isinstance(payload, JsonResponse):
            return payload
        name, body = parse_api_template(payload)
        saved = templates.update_template(scope=scope, template_id=template_id, name=name, body=body)
        return JsonResponse(template_json(saved))
    return JsonResponse(template_json(templates.get_template(scope=scope, template_id=template_id)))
