"""The /stats/ page: full page vs htmx partial, ranges, scoping, SVG content, bad input, store down."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from app.domain.ids import utc_now
from app.domain.interaction import Interaction
from app.errors import STATS_RANGE_INVALID, STORE_UNAVAILABLE
from app.services.mongo_repo import get_repository

HTMX = {"HTTP_HX_REQUEST": "true"}
pytestmark = pytest.mark.usefixtures("store_settings")


def visitor(client: Client) -> str:
    """The visitor id the client's session holds (a first visit creates it)."""
    client.get("/")
    return str(client.session["visitor_id"])


def seed(session_id: str, *, model: str = "tiny/causal", ago: timedelta = timedelta(0), **fields: object) -> None:
    values: dict[str, object] = {"status": "ok", "output_tokens": 10, "durations_ms": {"generate_ms": 100.0}}
    values.update(fields)
    get_repository().insert(
        Interaction(
            prompt="p",
            output="o",
            model=model,
            task="text-generation",
            session_id=session_id,
            created_at=utc_now() - ago,
            **values,  # type: ignore[arg-type]
        )
    )


def test_stats_page_renders_full_page_with_range_links(client: Client) -> None:
    response = client.get("/stats/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert 'href="/stats/" aria-current="page">Stats</a>' in body
    for key in ("24h", "7d", "30d", "all"):
        assert f'href="/stats/?range={key}"' in body
        assert f'hx-get="/stats/?range={key}"' in body
    assert 'hx-push-url="true"' in body
    assert 'id="range-7d" href="/stats/?range=7d"' in body
    assert re.search(r'id="range-7d"[^>]*aria-current="page"', body)
    assert "HX-Request" in response["Vary"]


def test_htmx_range_change_gets_the_body_partial_with_status_update(client: Client) -> None:
    response = client.get("/stats/?range=24h", **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<div id="stats-body"')
    assert 'hx-swap-oob="true"' in body
    assert re.search(r'id="range-24h"[^>]*aria-current="page"', body)
    assert "Last 24 hours: no interactions yet." in body
    assert "HX-Request" in response["Vary"]


def test_empty_store_says_so_without_charts(client: Client) -> None:
    body = client.get("/stats/").content.decode()
    assert "Last 7 days: no interactions yet." in body
    assert "<svg" not in body


def test_page_shows_the_visitors_figures_and_charts(client: Client) -> None:
    me = visitor(client)
    seed(me, durations_ms={"generate_ms": 100.0}, output_tokens=10)
    seed(me, durations_ms={"generate_ms": 300.0}, output_tokens=30)
    seed(me, status="error", durations_ms={}, output_tokens=0)
    seed(me, model="tiny/t5", durations_ms={"generate_ms": 1000.0}, output_tokens=50)
    seed("someone-else", model="other/model")
    body = client.get("/stats/?range=24h").content.decode()
    assert "Last 24 hours: 4 interactions, 2 models, median latency 300 ms, 25.0 % errors." in body
    assert "other/model" not in body
    row = re.search(r'<tr class="model-row">\s*<th scope="row">tiny/causal</th>(.*?)</tr>', body, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells == ["text-generation", "3", "100 ms", "300 ms", "100.00", "—", "33.3 % (1)", "0.0 % (0)"]
    assert body.count('<svg id="chart-') == 4
    assert 'role="img" aria-labelledby="chart-activity-title" aria-describedby="chart-activity-desc"' in body
    assert '<figure class="chart-figure" id="figure-chart-activity" data-points="72">' in body  # 24 hours x 3 lines
    assert 'data-label="tiny/causal" data-value="3"' in body
    assert 'data-label="tiny/t5" data-value="1"' in body
    assert "<summary>Data table</summary>" in body


def test_range_changes_the_series_chart(client: Client) -> None:
    me = visitor(client)
    seed(me)
    seed(me, ago=timedelta(days=3))
    day = client.get("/stats/?range=24h", **HTMX).content.decode()
    week = client.get("/stats/?range=7d", **HTMX).content.decode()
    assert 'id="figure-chart-activity" data-points="72"' in day
    assert 'id="figure-chart-activity" data-points="21"' in week
    assert "Interactions per hour" in day
    assert "Interactions per day" in week
    assert "Last 7 days: 2 interactions" in week


def test_model_names_are_escaped_in_table_and_svg(client: Client) -> None:
    me = visitor(client)
    seed(me, model='<script>alert("x")</script>')
    body = client.get("/stats/?range=24h").content.decode()
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_unknown_range_is_a_400_with_the_choices(client: Client) -> None:
    response = client.get("/stats/?range=1y")
    assert response.status_code == 400
    body = response.content.decode()
    assert STATS_RANGE_INVALID.format(choices="24h, 7d, 30d, all") in body
    assert 'href="/stats/?range=7d"' in body


def test_post_is_not_allowed(client: Client) -> None:
    assert client.post("/stats/").status_code == 405


def test_unreachable_store_is_a_503_with_the_message(client: Client, unreachable_store: object) -> None:
    response = client.get("/stats/")
    assert response.status_code == 503
    assert STORE_UNAVAILABLE in response.content.decode()
