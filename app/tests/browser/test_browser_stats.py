"""A person on /stats/: switch the range, the chart changes in place, the URL follows, Back restores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from playwright.sync_api import Page, expect

from app.domain.ids import utc_now
from app.domain.interaction import Interaction
from app.services.mongo_repo import get_repository

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("store_settings")]


def seed_for_browser_visitor(page: Page) -> None:
    """Store interactions for the visitor whose session the browser holds (now and 3 days ago)."""
    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    visitor_id = SessionStore(session_key=session_key)["visitor_id"]
    for ago, generate_ms in ((timedelta(minutes=5), 120.0), (timedelta(days=3), 480.0)):
        get_repository().insert(
            Interaction(
                prompt="p",
                output="o",
                model="tiny/causal",
                task="text-generation",
                session_id=visitor_id,
                output_tokens=12,
                durations_ms={"generate_ms": generate_ms},
                created_at=utc_now() - ago,
            )
        )


def test_switching_the_range_redraws_the_chart_in_place(page: Page, live_server: object) -> None:
    url = f"{live_server.url}/stats/"  # type: ignore[attr-defined]
    page.goto(f"{live_server.url}/")  # type: ignore[attr-defined]  # the visit gives the browser its visitor id
    seed_for_browser_visitor(page)
    page.goto(url)

    activity = page.locator("#figure-chart-activity")
    expect(activity.locator("figcaption")).to_have_text("Interactions per day")
    expect(activity.locator(".series-0 circle.chart-point")).to_have_count(7)
    expect(page.locator(".stats-summary")).to_contain_text("Last 7 days: 2 interactions")
    page.evaluate("window.__sameDocument = true")

    page.get_by_role("link", name="Last 24 hours").click()
    expect(activity.locator("figcaption")).to_have_text("Interactions per hour")
    expect(activity.locator(".series-0 circle.chart-point")).to_have_count(24)
    expect(page.locator(".stats-summary")).to_contain_text("Last 24 hours: 1 interaction,")
    expect(page.get_by_role("link", name="Last 24 hours")).to_have_attribute("aria-current", "page")
    expect(page).to_have_url(f"{url}?range=24h")
    assert page.evaluate("window.__sameDocument") is True  # swapped by htmx, no page load

    page.go_back()
    expect(page).to_have_url(url)
    expect(activity.locator("figcaption")).to_have_text("Interactions per day")
    expect(page.locator(".stats-summary")).to_contain_text("Last 7 days: 2 interactions")


def test_stats_link_in_header_opens_the_page(page: Page, live_server: object) -> None:
    page.goto(f"{live_server.url}/")  # type: ignore[attr-defined]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Stats").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
