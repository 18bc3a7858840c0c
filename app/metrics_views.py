"""``GET /metrics``: the Prometheus text format, opt-in and guarded (see ``app.services.metrics``)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from app.errors import METRICS_TOKEN_REQUIRED
from app.services.metrics import CONTENT_TYPE, exposition, scrape_refusal

PLAIN_TEXT = "text/plain; charset=utf-8"


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
