"""Counts and times every request by Django view name for ``/metrics``.

Off (removed from the chain by Django) unless ``METRICS_ENABLED`` is on. The view name comes from
``request.resolver_match.view_name`` (e.g. ``app:index``); requests that matched no URL are
``unmatched``, so random paths cannot create new label values.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from app.services.metrics import observe_request


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
