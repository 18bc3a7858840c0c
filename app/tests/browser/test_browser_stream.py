"""A person watches the answer stream in, presses Esc, and finds the partial answer kept as cancelled;
reloads mid-stream and sees it go on; opens it in a second tab. Served by uvicorn (ASGI), as in production."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Request, expect

from app.services import generation
from app.services.engines.transformers_batch import LocalBackend
from app.services.model_registry import service_for
from app.services.mongo_repo import get_repository
from app.tests.conftest_browser import AsgiLiveServer
from app.tests.services.test_inference import SlowNoEos

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings")]


@pytest.fixture
def slow_tokens() -> Iterator[None]:
    """~20 tokens a second that never end early: slow enough to watch and to stop."""
    service = service_for(None)
    service.warm_up()
    eos = sorted(service.loaded_model().eos_token_ids)
    LocalBackend.extra_logits_processors = (SlowNoEos(eos, delay=0.05),)
    yield
    LocalBackend.extra_logits_processors = ()
    generation.reset_streams()


@pytest.mark.usefixtures("slow_tokens")
def test_tokens_appear_progressively_and_esc_keeps_the_partial_answer(
    page: Page, asgi_live_server: AsgiLiveServer
) -> None:
    page.goto(f"{asgi_live_server.url}/")
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
    shown = str(answer.locator(".answer-source").text_content())  # the text itself; .output shows it rendered
    assert shown.startswith(early.strip()) and len(shown) > len(early.strip())
    expect(page.locator("#recent-list .history-row").first).to_contain_text("cancelled")

    doc = get_repository().collection.find_one({"prompt": "Tell me a long story"})
    assert doc is not None
    assert doc["status"] == "cancelled"
    assert doc["output"] == shown
    assert 0 < doc["output_tokens"] < 600

    page.goto(f"{asgi_live_server.url}/history/{doc['_id']}/")
    expect(page.locator("main")).to_contain_text(shown[:40])


@pytest.mark.usefixtures("slow_tokens")
def test_stop_button_stops_the_stream(page: Page, asgi_live_server: AsgiLiveServer) -> None:
    page.goto(f"{asgi_live_server.url}/")
    page.get_by_text("Parameters").click()
    page.locator("input[name=max_new_tokens]").fill("600")
    page.get_by_label("Prompt").fill("Another long story")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#result article.streaming .output")).not_to_be_empty()
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#result article.answer[data-status=cancelled]")).to_be_visible()


def start_long_answer(page: Page, base: str, prompt: str, tokens: str) -> str:
    page.goto(f"{base}/")
    page.get_by_text("Parameters").click()
    page.locator("input[name=max_new_tokens]").fill(tokens)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#result article.streaming .output")).not_to_be_empty()
    expect(page).to_have_url(re.compile(r"/\?answer=[0-9a-f]+$"))  # the URL names the running answer
    return str(page.locator("#result article.streaming").get_attribute("data-stream-id"))


@pytest.mark.usefixtures("slow_tokens")
def test_reload_mid_stream_continues_the_answer_from_where_it_was(page: Page, asgi_live_server: AsgiLiveServer) -> None:
    sid = start_long_answer(page, asgi_live_server.url, "Keep going after a reload", "70")
    output = page.locator("#result article.streaming .output")
    expect(output).not_to_have_text(output.inner_text())  # it grows
    before = output.inner_text()

    page.reload()

    running = page.locator(f"#result article.streaming[data-stream-id='{sid}'] .output")
    expect(running).to_be_visible()
    assert running.inner_text().startswith(before)  # the text so far, at once
    answer = page.locator("#result article.answer[data-status=ok]")
    expect(answer).to_be_visible(timeout=30_000)  # the stream went on to its end
    shown = str(answer.locator(".answer-source").text_content())
    doc = get_repository().collection.find_one({"prompt": "Keep going after a reload"})
    assert doc is not None and doc["status"] == "ok"
    assert shown == doc["output"] and shown.startswith(before)  # nothing lost, nothing twice
    assert doc["output_tokens"] == 70


@pytest.mark.usefixtures("slow_tokens")
def test_a_second_tab_shows_the_same_stream(page: Page, asgi_live_server: AsgiLiveServer) -> None:
    start_long_answer(page, asgi_live_server.url, "Watch me twice", "60")
    other = page.context.new_page()  # same visitor, another tab
    other.goto(page.url)
    expect(other.locator("#result article.streaming .output")).not_to_be_empty()

    first = page.locator("#result article.answer[data-status=ok]")
    second = other.locator("#result article.answer[data-status=ok]")
    expect(first).to_be_visible(timeout=30_000)
    expect(second).to_be_visible(timeout=30_000)
    doc = get_repository().collection.find_one({"prompt": "Watch me twice"})
    assert doc is not None
    assert first.locator(".answer-source").text_content() == second.locator(".answer-source").text_content()
    assert first.locator(".answer-source").text_content() == doc["output"]


@pytest.mark.usefixtures("slow_tokens")
def test_a_dropped_connection_resumes_with_last_event_id_and_nothing_twice(
    page: Page, asgi_live_server: AsgiLiveServer
) -> None:
    feeds: list[Request] = []
    page.on("request", lambda request: feeds.append(request) if "/events" in request.url else None)
    start_long_answer(page, asgi_live_server.url, "Survive a dropped connection", "1000")
    output = page.locator("#result article.streaming .output")
    expect(output).not_to_have_text(output.inner_text())

    asgi_live_server.restart()  # every open connection is cut; the browser reconnects by itself

    for _ in range(200):  # EventSource retries after a few seconds
        if len(feeds) > 1:
            break
        page.wait_for_timeout(100)
    assert len(feeds) > 1
    reconnect = feeds[-1]
    resumed_from = int(reconnect.all_headers().get("last-event-id", "0"))
    assert resumed_from > 0  # EventSource sent the offset of the text it had
    grown = output.inner_text()
    expect(output).not_to_have_text(grown)  # the rest streams in again
    shown = output.inner_text()
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#result article.answer[data-status=cancelled]")).to_be_visible()
    doc = get_repository().collection.find_one({"prompt": "Survive a dropped connection"})
    assert doc is not None
    assert doc["output"].startswith(shown)  # what was shown is the answer so far, no piece of it twice
