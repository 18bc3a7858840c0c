"""Error pages: JSON under ``/api/``, a friendly page elsewhere; never Django's bare defaults."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from app.middleware import is_api_request

logger = logging.getLogger(__name__)

BAD_REQUEST = "The request could not be understood. Check what was sent and try again."
FORBIDDEN = "You are not allowed to do that."
NOT_FOUND = "There is nothing at this address."
SERVER_ERROR = "Something went wrong on our side. Your input was kept where possible; please try again."
CSRF_FAILED = (
    "The security token of this form was missing or has expired (cookies blocked, or the page was open too long). "
    "Reload the page and send it again."
)
CSRF_FAILED_API = (
    "CSRF check failed: send the value of the csrftoken cookie in an X-CSRFToken header with session requests, "
    "or authenticate with 'Authorization: Bearer <token>'."
)


def _error(request: HttpRequest, *, status: int, message: str, template: str) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"error": message}, status=status)
    return render(request, template, {"message": message, "status": status}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, status=400, message=BAD_REQUEST, template="400.html")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, status=403, message=FORBIDDEN, template="403.html")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, status=404, message=NOT_FOUND, template="404.html")


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered without context processors: whatever failed must not fail again here."""
    if is_api_request(request):
        return JsonResponse({"error": SERVER_ERROR}, status=500)
    try:
        body = get_template("500.html").render({"message": SERVER_ERROR})
    except TemplateDoesNotExist:
        body = f"<!doctype html><title>Server error</title><h1>Server error</h1><p>{SERVER_ERROR}</p>"
    return HttpResponse(body, status=500)


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs: Any) -> HttpResponse:
    logger.warning("CSRF failure on %s %s: %s", request.method, request.path, reason)
    if is_api_request(request):
        return JsonResponse({"error": CSRF_FAILED_API}, status=403)
    if getattr(request, "htmx", False):
        response = render(request, "403.html#message", {"message": CSRF_FAILED, "status": 403}, status=403)
        return response
    return render(request, "403.html", {"message": CSRF_FAILED, "status": 403}, status=403)
