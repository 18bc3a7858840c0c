"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (model, store, outbox), ``/metrics``."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from app.errors import METRICS_TOKEN_REQUIRED
from app.services.health import readiness
from app.services.metrics_exposition import CONTENT_TYPE, exposition, scrape_refusal
from app.services.outbox import get_worker

PLAIN_TEXT = "text/plain; charset=utf-8"


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


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        return HttpResponse("Not found.\n", status=404, content_type=PLAIN_TEXT)
    refusal = scrape_refusal(
        token=settings.METRICS_TOKEN,
        authorization=request.headers.get("Authorization", ""),
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        headers=request.headers,
    )
    if refusal == METRICS_TOKEN_REQUIRED:
        response = HttpResponse(refusal + "\n", status=401, content_type=PLAIN_TEXT)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if refusal is not None:
        return HttpResponse(refusal + "\n", status=403, content_type=PLAIN_TEXT)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
