"""Security headers, including a Content-Security-Policy that works with htmx.

The policy allows scripts and styles from this origin only: no inline ``<script>``, no ``on*=``
attributes, no ``eval``. htmx runs under it because the page sets ``allowEval: false`` (so
``hx-on`` and ``hx-trigger`` filters such as ``keydown[ctrlKey]`` are never used; key handling
lives in ``static/app/*.js``), ``allowScriptTags: false`` and ``includeIndicatorStyles: false``
(htmx would otherwise inject a ``<style>`` element) in the ``htmx-config`` meta of ``base.html``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
