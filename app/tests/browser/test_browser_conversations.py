"""A person follows up on an answer, starts a new conversation with Alt+N, edits an earlier prompt and
switches between the versions of that turn on the conversation page (buttons and [ / ] keys).

The model is real (the tiny local one, or the bundled SmolLM2 in the marked test); what it was handed is
recorded by wrapping ``NLPService.submit`` in this process, where the ASGI server runs too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import ChatTurn
from app.services import nlp_service
from app.services.model_registry import service_for
from app.services.mongo_repo import get_repository
from app.tests.browser.axe import assert_accessible
from app.tests.conftest_browser import AsgiLiveServer

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings", "fresh_generation_state")]


def send(page: Page, prompt: str, *, timeout: float = 5_000) -> None:
    """Type a prompt, Ctrl+Enter, and wait until its answer has finished (the marker then follows it)."""
    box = page.get_by_label("Prompt")
    box.fill(prompt)
    box.press("Control+Enter")
    expect(page.locator("#follow-up .follow-up-snippet")).to_have_text(prompt, timeout=timeout)
    expect(page.locator("#result article.answer:not(.streaming)")).to_be_visible()


def check_accessible(page: Page, browser: Any) -> None:
    """axe-core on the page as this visitor sees it, in a context that lets the test inject its script (CSP)."""
    context = browser.new_context(bypass_csp=True)
    try:
        context.add_cookies(page.context.cookies())
        other = context.new_page()
        other.goto(page.url)
        assert_accessible(other)
    finally:
        context.close()


def record(prompt: str) -> dict[str, Any]:
    doc = get_repository().collection.find_one({"prompt": prompt})
    assert doc is not None, prompt
    return doc


def test_follow_up_carries_the_conversation_and_alt_n_starts_a_new_one(
    page: Page, asgi_live_server: AsgiLiveServer, received: list[tuple[ChatTurn, ...]]
) -> None:
    page.goto(f"{asgi_live_server.url}/")
    expect(page.locator("#follow-up")).to_be_hidden()
    send(page, "What is the capital of France?")
    marker = page.locator("#follow-up")
    expect(marker).to_be_visible()
    expect(marker).to_contain_text("Follow-up to “What is the capital of France?”")
    expect(page.get_by_label("Prompt")).to_have_value("")  # the answered prompt left the box

    send(page, "And of Italy?")
    first, second = record("What is the capital of France?"), record("And of Italy?")
    assert received[-1] == (
        ChatTurn("user", "What is the capital of France?"),
        ChatTurn("assistant", first["output"]),
        ChatTurn("user", "And of Italy?"),
    )
    assert (second["parent_id"], second["conversation_id"]) == (str(first["_id"]), str(first["_id"]))

    page.get_by_label("Prompt").press("Alt+n")
    expect(marker).to_be_hidden()
    expect(page.locator("#follow-up input[name=parent_id]")).to_have_count(0)
    send(page, "A fresh start")
    assert received[-1] in ((), (ChatTurn("user", "A fresh start"),))
    fresh = record("A fresh start")
    assert fresh["parent_id"] is None and fresh["conversation_id"] == str(fresh["_id"])

    page.get_by_role("link", name="New conversation").click()  # the button does the same
    expect(marker).to_be_hidden()


def test_an_edited_prompt_is_a_new_version_the_page_switches_to_by_button_and_key(
    page: Page, asgi_live_server: AsgiLiveServer, browser: Any
) -> None:
    page.goto(f"{asgi_live_server.url}/")
    send(page, "Name a colour")
    send(page, "Another one")
    page.locator("#result article.answer").get_by_role("link", name="edit & resend").click()
    expect(page.locator("#follow-up")).to_contain_text("Edit & resend “Another one”")
    box = page.get_by_label("Prompt")
    expect(box).to_have_value("Another one")
    box.fill("Another one, please")
    box.press("Control+Enter")
    expect(page.locator("#result article.answer:not(.streaming)")).to_contain_text("Another one, please")
    root, older, edited = record("Name a colour"), record("Another one"), record("Another one, please")
    assert edited["parent_id"] == older["parent_id"] == str(root["_id"])

    page.locator("#result article.answer").get_by_role("link", name="conversation").click()
    turns = page.locator(".thread .turn")
    expect(turns).to_have_count(2)
    second = turns.nth(1)
    expect(second.locator(".prompt-text")).to_have_text("Another one, please")
    expect(second.locator(".branch-position")).to_have_text("2/2")
    check_accessible(page, browser)

    second.get_by_role("link", name="Previous version of turn 2").click()
    expect(page.locator(".thread .turn").nth(1).locator(".prompt-text")).to_have_text("Another one")
    expect(page.locator(".thread .turn").nth(1).locator(".branch-position")).to_have_text("1/2")
    assert f"at={older['_id']}" in page.url

    page.keyboard.press("]")  # the selected turn is focused on arrival: ] moves to its next version
    expect(page.locator(".thread .turn").nth(1).locator(".prompt-text")).to_have_text("Another one, please")
    page.keyboard.press("[")
    expect(page.locator(".thread .turn").nth(1).locator(".branch-position")).to_have_text("1/2")

    page.get_by_role("link", name="Continue this conversation").click()
    expect(page.locator("#follow-up")).to_contain_text("Follow-up to “Another one”")


def test_history_shows_the_turns_and_opens_the_conversation(page: Page, asgi_live_server: AsgiLiveServer) -> None:
    page.goto(f"{asgi_live_server.url}/")
    send(page, "Tell me about zebras")
    send(page, "And their stripes?")
    page.goto(f"{asgi_live_server.url}/history/?q=stripes")
    row = page.locator("#history-list .history-row").first
    expect(row).to_contain_text("2 turns")
    row.locator(".row-link").click()
    selected = page.locator(".thread .turn.selected")
    expect(selected.locator(".prompt-text")).to_have_text("And their stripes?")
    expect(page.locator(".thread .turn")).to_have_count(2)


@pytest.fixture
def bundled_settings(app_settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    app_settings.HF_MODEL = ""
    app_settings.HF_TASK = "text-generation"
    nlp_service.reset_services()
    service_for(None).warm_up()  # type: ignore[attr-defined]  # converted once, then ~0.4 s to load
    yield app_settings
    nlp_service.reset_services()


@pytest.mark.bundled_model
@pytest.mark.usefixtures("bundled_settings")
def test_bundled_model_follow_up_gets_the_earlier_turns_through_its_chat_template(
    page: Page, asgi_live_server: AsgiLiveServer, received: list[tuple[ChatTurn, ...]]
) -> None:
    page.goto(f"{asgi_live_server.url}/")
    page.get_by_text("Parameters").click()
    page.locator("input[name=max_new_tokens]").fill("16")
    send(page, "My name is Ada. Please remember it.", timeout=60_000)
    send(page, "What is my name?", timeout=60_000)
    first, second = record("My name is Ada. Please remember it."), record("What is my name?")
    assert [turn.content for turn in received[-1]] == [first["prompt"], first["output"], "What is my name?"]
    # The chat template rendered every turn: the follow-up's input holds the first prompt and answer.
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["output_tokens"]
    assert second["parent_id"] == str(first["_id"])
    expect(page.locator("#result article.answer .output")).not_to_be_empty()
