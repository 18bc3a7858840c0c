"""``/healthz`` (the process answers) and ``/readyz`` (model, store and outbox) as JSON."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from app.services.health import readiness
from app.services.outbox import get_worker


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: no model, no store, no disk — only that this process serves requests."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the model is loaded (or loadable) and MongoDB answers, else 503.

    ``outbox.depth`` counts interactions kept locally while MongoDB was unreachable; a non-empty
    outbox also wakes the replay worker.
    """
    ready, report = readiness()
    if report["outbox"].get("depth"):
        get_worker().wake()
    return JsonResponse(report, status=200 if ready else 503)
