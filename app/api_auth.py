"""Authentication for the JSON API under ``/api/``.

A request may use the browser session (then Django's CSRF middleware requires the ``X-CSRFToken``
header on POST/PUT/PATCH/DELETE, exactly like the pages) or ``Authorization: Bearer <token>`` with
a token from ``settings.API_TOKENS``. A bearer client needs no cookie and no CSRF token (a browser
never attaches that header by itself), and its interactions are scoped to the token:
``Scope(session_id="token:<first 16 hex digits of sha256(token)>")``.

The middleware also turns Django's bare 405 responses under ``/api/`` into JSON errors.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from app.domain.interaction import Scope

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
BEARER_SCOPE_ATTR = "bearer_scope"
TOKEN_INVALID = "The bearer token is not valid for this API."
TOKEN_MALFORMED = "Send the token as 'Authorization: Bearer <token>'."
METHOD_NOT_ALLOWED = "Method {method} is not allowed here. Allowed: {allowed}."


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def token_scope(token: str) -> Scope:
    """The scope of a bearer client: stable per token, reveals nothing about it."""
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
    return Scope(session_id=f"token:{digest}")


def match_token(presented: str) -> bool:
    """Constant-time comparison against every configured token."""
    found = False
    for configured in settings.API_TOKENS:
        found |= hmac.compare_digest(presented.encode("utf-8"), configured.encode("utf-8"))
    return found


def bearer_scope(request: HttpRequest) -> Scope | None:
    """The token scope set by the middleware for an authenticated bearer request, else None."""
    scope = getattr(request, BEARER_SCOPE_ATTR, None)
    return scope if isinstance(scope, Scope) else None


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
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
            if not match_token(token):
                logger.warning("API request with an unknown bearer token from %s", request.META.get("REMOTE_ADDR"))
                return _unauthorized(TOKEN_INVALID)
            setattr(request, BEARER_SCOPE_ATTR, token_scope(token))
            # The token is the proof of intent: cross-site pages cannot set this header (no CORS here).
            request.csrf_processing_done = True  # type: ignore[attr-defined]
        response = self.get_response(request)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            allowed = response.get("Allow", "")
            json_response = JsonResponse(
                {"error": METHOD_NOT_ALLOWED.format(method=request.method, allowed=allowed or "none")}, status=405
            )
            if allowed:
                json_response["Allow"] = allowed
            return json_response
        return response
