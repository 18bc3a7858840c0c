"""XSS payloads in prompts, answers and model names are shown as text in a real browser; none runs.

Each payload would set ``window.__xss`` or the page title, or open a dialog, if it ever ran. A
``securitypolicyviolation`` listener also records anything the Content-Security-Policy had to block
(an inline script that escaped escaping, an inline style the policy forbids).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from playwright.sync_api import Page, expect

from app.domain.interaction import Interaction
from app.services.mongo_repo import get_repository
from app.tests.conftest_browser import AsgiLiveServer

pytestmark = pytest.mark.usefixtures("app_settings")

PAYLOADS = [
    "<script>window.__xss=1;document.title='XSS'</script>",
    "<img src=x onerror=\"window.__xss=2;document.title='XSS'\">",
    '"><svg onload="window.__xss=3">',
    "</textarea><script>window.__xss=4</script>",
    '\'><iframe srcdoc="<script>parent.__xss=5</script>"></iframe>',
    '<a href="javascript:window.__xss=6" id=xsslink>click</a>',
    "{{ 7|add:7 }} {% now 'Y' %} <style>body{display:none}</style>",
]
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile);
});
"""


def browser_visitor(page: Page) -> str:
    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    return str(SessionStore(session_key=session_key)["visitor_id"])


def seed(visitor_id: str) -> list[str]:
    ids = []
    for number, payload in enumerate(PAYLOADS):
        interaction = Interaction(
            prompt=f"p{number} {payload}",
            output=f"o{number} {payload}",
            model=f"m{number} {payload}",
            task="text-generation",
            session_id=visitor_id,
        )
        get_repository().insert(interaction)
        ids.append(interaction.id)
    return ids


def assert_nothing_ran(page: Page, where: str, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss") is None, where
    assert page.title() != "XSS", where
    assert dialogs == [], where
    assert page.evaluate("window.__cspViolations") == [], where
    assert page.locator("#xsslink").count() == 0, where
    assert page.locator("body").is_visible(), where


@pytest.fixture
def watched_page(page: Page) -> tuple[Page, list[str]]:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    return page, dialogs


@pytest.mark.browser
def test_stored_payloads_render_as_text_on_every_page(watched_page: tuple[Page, list[str]], live_server: Any) -> None:
    page, dialogs = watched_page
    page.goto(f"{live_server.url}/")
    ids = seed(browser_visitor(page))
    urls = ["/", f"/?answer={ids[0]}", "/history/", "/history/?q=window", "/stats/?range=all"]
    urls += [f"/history/{interaction_id}/" for interaction_id in ids]
    for url in urls:
        response = page.goto(f"{live_server.url}{url}")
        assert response is not None and response.status in {200, 404}, url
        page.wait_for_load_state("load")
        assert_nothing_ran(page, url, dialogs)
    page.goto(f"{live_server.url}/history/{ids[0]}/")
    expect(page.locator("main")).to_contain_text(PAYLOADS[0])  # shown, literally, as text


@pytest.mark.browser
def test_typed_payload_is_swapped_in_by_htmx_as_text(
    watched_page: tuple[Page, list[str]], asgi_live_server: AsgiLiveServer
) -> None:
    page, dialogs = watched_page
    page.goto(f"{asgi_live_server.url}/")
    box = page.get_by_label("Prompt")
    box.fill(PAYLOADS[0] + PAYLOADS[1])
    box.press("Control+Enter")
    answer = page.locator("#result .answer")
    expect(answer).to_be_visible()
    expect(answer.locator(".answer-prompt")).to_contain_text(PAYLOADS[0])
    assert_nothing_ran(page, "after htmx swap", dialogs)
    page.reload()
    assert_nothing_ran(page, "after reload", dialogs)


@pytest.mark.browser
def test_payload_in_search_box_is_not_reflected_as_html(watched_page: tuple[Page, list[str]], live_server: Any) -> None:
    page, dialogs = watched_page
    page.goto(f"{live_server.url}/history/?q=%22%3E%3Cscript%3Ewindow.__xss%3D9%3C%2Fscript%3E")
    assert_nothing_ran(page, "search reflection", dialogs)


@pytest.mark.parametrize("path", ["/history/export.jsonl", "/history/export.csv"])
def test_exports_are_downloads_never_html(client: Client, path: str) -> None:
    client.post("/prompt/", {"prompt": PAYLOADS[0], "max_new_tokens": "2"})
    response = client.get(path)
    if response.status_code == 404:
        pytest.skip(f"{path} is not served")
    assert response.status_code == 200
    assert not response["Content-Type"].startswith("text/html")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment")


@pytest.mark.browser
def test_csp_blocks_an_injected_inline_script_and_the_listener_sees_it(
    watched_page: tuple[Page, list[str]], live_server: Any
) -> None:
    """Guard against a vacuous pass: the policy really blocks inline code and violations are recorded."""
    page, _ = watched_page
    page.goto(f"{live_server.url}/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__xss = 42';"
        " document.body.appendChild(s); }"
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("window.__cspViolations")[0].startswith("script-src")
