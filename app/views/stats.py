"""``/stats/``: usage figures and charts for the visitor's scope; htmx swaps the body when the range changes."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from app.domain.stats import DEFAULT_RANGE, RANGES
from app.errors import StoreUnavailable
from app.forms.stats import StatsRangeForm
from app.presenters.stats_page import build_stats_page
from app.services.stats import compute_stats
from app.views._htmx import HtmxHttpRequest, page_or_fragment, vary_on_htmx
from app.views._visitor import visitor_scope

STATS = "app/stats.html"


@require_GET
@vary_on_htmx
def stats_page(request: HtmxHttpRequest) -> HttpResponse:
    form = StatsRangeForm(request.GET)
    scope = visitor_scope(request)
    context: dict[str, Any] = {
        "ranges": RANGES.values(),
        "shared": bool(getattr(scope, "shared", False)),
        "oob_status": bool(request.htmx),
    }
    status = 200
    if not form.is_valid():
        context.update(range_key=DEFAULT_RANGE, problem=" ".join(str(message) for message in form.errors["range"]))
        status = 400
    else:
        range_key = form.range_key()
        context["range_key"] = range_key
        try:
            report = compute_stats(scope=scope, range_key=range_key)
        except StoreUnavailable as exc:
            context["problem"] = exc.message
            status = 503
        else:
            context["page"] = build_stats_page(report)
    return page_or_fragment(request, STATS, "stats-body", context, status=status)
