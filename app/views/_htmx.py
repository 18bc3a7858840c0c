"""Rendering for htmx: a fragment for htmx requests, the full page otherwise; errors in one place.

Every view that switches on ``request.htmx`` is wrapped in ``vary_on_htmx`` (Django's
``vary_on_headers("HX-Request")``, as django-htmx recommends), error branches included, so a cache
never serves a fragment for a page or the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from app.errors import DomainError


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it (the type django-htmx documents for views)."""

    htmx: HtmxDetails


View = TypeVar("View", bound=Callable[..., HttpResponse])
ContextBuilder = Callable[[HtmxHttpRequest], dict[str, Any]]

vary_on_htmx = vary_on_headers("HX-Request")


def page_or_fragment(
    request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """``template#fragment`` for htmx, the whole ``template`` otherwise."""
    name = f"{template}#{fragment}" if request.htmx else template
    return render(request, name, context, status=status)


def problem_response(
    request: HtmxHttpRequest,
    error: DomainError,
    *,
    template: str,
    fragment: str = "problem",
    page_context: ContextBuilder | None = None,
    message: str | None = None,
) -> HttpResponse:
    """The one HTML rendering of a domain error: its message, its status, its headers."""
    context: dict[str, Any] = {"problem": message or error.message}
    if not request.htmx and page_context is not None:
        context = {**page_context(request), **context}
    response = page_or_fragment(request, template, fragment, context, status=error.status)
    for name, value in error.headers().items():
        response[name] = value
    return response


def renders_problems(
    template: str, *, fragment: str = "problem", page_context: ContextBuilder | None = None
) -> Callable[[View], View]:
    """A view that raises a ``DomainError`` answers with ``problem_response`` for ``template``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as error:
                return problem_response(request, error, template=template, fragment=fragment, page_context=page_context)

        return wrapped  # type: ignore[return-value]

    return decorate


def htmx_action(
    template: str, *, page_context: ContextBuilder | None = None, methods: tuple[str, ...] = ("POST",)
) -> Callable[[View], View]:
    """The usual stack of an htmx action: allowed methods, ``Vary: HX-Request``, problems rendered."""

    def decorate(view: View) -> View:
        wrapped = renders_problems(template, page_context=page_context)(view)
        return require_http_methods(list(methods))(vary_on_htmx(wrapped))

    return decorate
