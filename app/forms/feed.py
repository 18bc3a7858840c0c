"""Where a feed resumes: the SSE ``Last-Event-ID`` its client sends, or ``?from=`` on the first connect."""

from __future__ import annotations

from django.http import HttpRequest

MAX_OFFSET = 10_000_000


def resume_offset(request: HttpRequest) -> int:
    """Characters of the answer the client already has (0 when it sends nothing usable).

    ``Last-Event-ID`` wins: the browser sends it on its own when it reconnects a dropped feed, and
    it is newer than the ``?from=`` the page was rendered with.
    """
    for raw in (request.headers.get("Last-Event-ID"), request.GET.get("from")):
        if raw is not None and raw.strip().isdigit() and int(raw.strip()) <= MAX_OFFSET:
            return int(raw.strip())
    return 0
