"""Request middleware: API authentication, security headers, request metrics, JSON errors.

* ``ApiAuthMiddleware`` — under ``/api/`` a request uses the browser session (then
  Django's CSRF middleware requires ``X-CSRFToken`` on unsafe methods, like the pages) or
  ``Authorization: Bearer <token>`` with a token from ``API_TOKENS``. A bearer client needs no cookie
  and no CSRF token (a browser never attaches that header by itself) and its interactions are scoped
  to the token. It also turns Django's bare 405 responses into JSON errors.
* ``DomainErrorJsonMiddleware`` — the one mapping from a ``DomainError`` raised by a JSON view to a
  response: the error's status and headers, ``{"error": message, "fields": {...}}``.
* ``SecurityHeadersMiddleware`` — a Content-Security-Policy that works with htmx: scripts and styles
  from this origin only, no inline ``<script>``, no ``on*=`` attributes, no ``eval``. htmx runs under
  it because ``base.html`` sets ``allowEval: false``, ``allowScriptTags: false`` and
  ``includeIndicatorStyles: false`` in its ``htmx-config`` meta; key handling lives in ``static/app/*.js``.
* ``MetricsMiddleware`` — counts and times requests by view name for ``/metrics`` (removed from the
  chain unless ``METRICS_ENABLED``); requests that matched no URL are ``unmatched``, so random paths
  cannot create new label values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, JsonResponse

from app.domain.interaction import Scope
from app.errors import DomainError, TooManyRequests
from app.services.api_tokens import KEY_USER_MISSING, KeyUserMissing, find_key, key_scope
from app.services.metrics import observe_request

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/",)  # /v1 (the OpenAI-compatible API) authenticates and answers errors itself
BEARER_SCOPE_ATTR = "bearer_scope"
TOKEN_INVALID = "The bearer token is not valid for this API."
TOKEN_MALFORMED = "Send the token as 'Authorization: Bearer <token>'."
METHOD_NOT_ALLOWED = "Method {method} is not allowed here. Allowed: {allowed}."

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
CROSS_ORIGIN_RESOURCE_POLICY = "same-origin"


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIXES)


def bearer_scope(request: HttpRequest) -> Scope | None:
    """The token scope set by the middleware for an authenticated bearer request, else None."""
    scope = getattr(request, BEARER_SCOPE_ATTR, None)
    return scope if isinstance(scope, Scope) else None


def json_error(message: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def domain_error_json(error: DomainError) -> JsonResponse:
    """The one JSON rendering of a domain error: its message, fields, status and headers."""
    extra: dict[str, Any] = {}
    if error.fields():
        extra["fields"] = error.fields()
    if isinstance(error, TooManyRequests):
        extra["retry_after"] = error.retry_after
    response = json_error(error.message, error.status, **extra)
    for name, value in error.headers().items():
        response[name] = value
    return response


def _unauthorized(message: str) -> JsonResponse:
    response = json_error(message, 401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class ApiAuthMiddleware:
    """Place after SessionMiddleware and before CsrfViewMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_request(request):
            return self.get_response(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # Other schemes (e.g. Basic from a password-protecting proxy) fall through to session + CSRF.
        if scheme.lower() == "bearer":
            token = token.strip()
            if not token:
                return _unauthorized(TOKEN_MALFORMED)
            key = find_key(token)
            if key is None:
                logger.warning("API request with an unknown bearer token from %s", request.META.get("REMOTE_ADDR"))
                return _unauthorized(TOKEN_INVALID)
            try:
                setattr(request, BEARER_SCOPE_ATTR, key_scope(key))
            except KeyUserMissing:
                return _unauthorized(KEY_USER_MISSING)
            # The key is the proof of intent: cross-site pages cannot set this header (no CORS here).
            request.csrf_processing_done = True  # type: ignore[attr-defined]
        response = self.get_response(request)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            allowed = response.get("Allow", "")
            json_response = json_error(METHOD_NOT_ALLOWED.format(method=request.method, allowed=allowed or "none"), 405)
            if allowed:
                json_response["Allow"] = allowed
            return json_response
        return response


class DomainErrorJsonMiddleware:
    """JSON views raise domain errors; this answers them (HTML views use ``app.views._htmx``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DomainError) and is_api_request(request):
            return domain_error_json(exception)
        return None


class SecurityHeadersMiddleware:
    """Adds CSP and related headers to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", CROSS_ORIGIN_RESOURCE_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed("METRICS_ENABLED is off")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        observe_request(
            view=match.view_name if match is not None else None,
            method=request.method or "",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response
