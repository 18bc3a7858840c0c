"""A person at the keyboard: type, Ctrl+Enter, see the answer and the new row, reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.tests.conftest_browser import AsgiLiveServer

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings")]


def test_ctrl_enter_answers_without_reload_and_row_survives_reload(
    page: Page, asgi_live_server: AsgiLiveServer
) -> None:
    page.goto(f"{asgi_live_server.url}/")
    page.evaluate("window.__sameDocument = true")
    box = page.get_by_label("Prompt")
    box.fill("What is the capital of France?")
    box.press("Control+Enter")

    answer = page.locator("#result .answer")
    expect(answer).to_be_visible()
    expect(answer).to_contain_text("What is the capital of France?")
    row = page.locator("#recent-list .history-row").first
    expect(row).to_contain_text("What is the capital of France?")
    assert page.evaluate("window.__sameDocument") is True  # no full page load happened

    page.reload()
    expect(page.locator("#recent-list .history-row").first).to_contain_text("What is the capital of France?")
    assert page.evaluate("window.__sameDocument") is None


def test_empty_prompt_shows_message_next_to_field(page: Page, live_server: object) -> None:
    page.goto(f"{live_server.url}/")  # type: ignore[attr-defined]
    page.get_by_label("Prompt").press("Control+Enter")
    expect(page.locator("#prompt-error")).to_have_text("Please enter a prompt.")
    expect(page.get_by_label("Prompt")).to_be_focused()
