"""A person watches the answer stream in, presses Esc, and finds the partial answer kept as cancelled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from app.services import generation
from app.services.engines.transformers_batch import LocalBackend
from app.services.model_registry import service_for
from app.services.mongo_repo import get_repository
from app.tests.services.test_inference import SlowNoEos

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings")]


@pytest.fixture
def slow_tokens() -> Iterator[None]:
    """~20 tokens a second that never end early: slow enough to watch and to stop."""
    service = service_for(None)
    service.warm_up()  # type: ignore[attr-defined]
    eos = sorted(service.loaded_model().eos_token_ids)  # type: ignore[attr-defined]
    LocalBackend.extra_logits_processors = (SlowNoEos(eos, delay=0.05),)
    yield
    LocalBackend.extra_logits_processors = ()
    generation.reset_streams()


@pytest.mark.usefixtures("slow_tokens")
def test_tokens_appear_progressively_and_esc_keeps_the_partial_answer(page: Page, live_server: object) -> None:
    page.goto(f"{live_server.url}/")  # type: ignore[attr-defined]
    page.get_by_text("Parameters").click()
    page.locator("input[name=max_new_tokens]").fill("600")
    box = page.get_by_label("Prompt")
    box.fill("Tell me a long story")
    box.press("Control+Enter")

    output = page.locator("#result article.streaming .output")
    expect(output).not_to_be_empty()
    early = output.inner_text()
    expect(output).not_to_have_text(early)  # more text arrived: the answer grows while we watch
    assert output.inner_text().startswith(early)
    expect(page.locator("#result .stream-status")).to_have_text("Generating…")

    box.press("Escape")

    answer = page.locator("#result article.answer[data-status=cancelled]")
    expect(answer).to_be_visible()
    expect(answer.locator(".status-cancelled")).to_have_text("cancelled")
    shown = answer.locator(".output").inner_text()
    assert shown.startswith(early.strip()) and len(shown) > len(early.strip())
    expect(page.locator("#recent-list .history-row").first).to_contain_text("cancelled")

    doc = get_repository().collection.find_one({"prompt": "Tell me a long story"})
    assert doc is not None
    assert doc["status"] == "cancelled"
    assert doc["output"] == shown
    assert 0 < doc["output_tokens"] < 600

    page.goto(f"{live_server.url}/history/{doc['_id']}/")  # type: ignore[attr-defined]
    expect(page.locator("main")).to_contain_text(shown[:40])


@pytest.mark.usefixtures("slow_tokens")
def test_stop_button_stops_the_stream(page: Page, live_server: object) -> None:
    page.goto(f"{live_server.url}/")  # type: ignore[attr-defined]
    page.get_by_text("Parameters").click()
    page.locator("input[name=max_new_tokens]").fill("600")
    page.get_by_label("Prompt").fill("Another long story")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#result article.streaming .output")).not_to_be_empty()
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#result article.answer[data-status=cancelled]")).to_be_visible()
