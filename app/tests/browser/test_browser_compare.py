"""A person compares two models side by side (both answers stream at once), stops them, and diffs two
answers picked in the history with the mouse and with the keyboard. Served by uvicorn (ASGI)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import generation, rate_limit
from app.services.engines.transformers_batch import LocalBackend
from app.services.model_registry import service_for
from app.services.mongo_repo import get_repository
from app.tests.browser.axe import assert_accessible
from app.tests.conftest_browser import AsgiLiveServer
from app.tests.history_seed import browser_scope, seed
from app.tests.services.test_inference import SlowNoEos

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="session")
def second_model(tiny_causal_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama-second") / "second-model"
    shutil.copytree(tiny_causal_model, folder)
    return folder


@pytest.fixture
def two_slow_models(app_settings: SettingsWrapper, second_model: Path) -> Iterator[list[str]]:
    """Two offered models (the default tiny one and a copy), each ~20 tokens a second, never ending early."""
    app_settings.HF_MODELS = ((str(second_model), "text-generation"),)
    models = [str(app_settings.HF_MODEL), str(second_model)]
    eos: list[int] = []
    for model in models:
        service = service_for(model)
        service.warm_up()  # type: ignore[attr-defined]
        eos = sorted(service.loaded_model().eos_token_ids)  # type: ignore[attr-defined]
    LocalBackend.extra_logits_processors = (SlowNoEos(eos, delay=0.05),)
    yield models
    LocalBackend.extra_logits_processors = ()
    generation.reset_streams()
    rate_limit.reset_rate_limits()


def records(prompt: str) -> list[dict[str, object]]:
    """The records once their final writes landed (one can wait a moment in the outbox behind another)."""
    deadline = time.monotonic() + 10
    while True:
        docs = list(get_repository().collection.find({"prompt": prompt}).sort("_id", 1))
        if all(doc["status"] != "pending" for doc in docs) or time.monotonic() > deadline:
            return docs
        time.sleep(0.05)


def start_comparison(page: Page, base: str, prompt: str, tokens: str) -> None:
    page.goto(f"{base}/compare/")
    page.get_by_text("Parameters (the same for every model)").click()
    page.locator("input[name=max_new_tokens]").fill(tokens)
    box = page.get_by_label("Prompt")
    box.fill(prompt)
    box.press("Control+Enter")


def test_two_answers_stream_side_by_side_and_are_stored_as_one_comparison(
    page: Page, asgi_live_server: AsgiLiveServer, two_slow_models: list[str]
) -> None:
    page.goto(f"{asgi_live_server.url}/compare/")
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(2)  # both offered models, picked
    assert_accessible(page)
    start_comparison(page, asgi_live_server.url, "Compare us", "50")

    streaming = page.locator(".compare-columns article.streaming")
    expect(streaming).to_have_count(2)
    # Both columns receive text while both are still generating: the answers stream at the same time.
    expect(page.locator(".compare-columns article.streaming .output:not(:empty)")).to_have_count(2)
    expect(streaming).to_have_count(2)
    assert_accessible(page)
    expect(page).to_have_url(re.compile(r"/compare/[0-9a-f]{24}/$"))

    done = page.locator(".compare-columns article.compare-column[data-status=ok]")
    expect(done).to_have_count(2, timeout=30_000)
    docs = records("Compare us")
    assert [doc["model"] for doc in docs] == two_slow_models
    assert len({doc["comparison_id"] for doc in docs}) == 1
    shown = [text.strip() for text in done.locator(".output").all_inner_texts()]
    assert all(shown)

    page.reload()  # the stored comparison: both answers, their models, tokens and timings
    columns = page.locator(".compare-columns article.compare-column")
    expect(columns).to_have_count(2)
    expect(columns.nth(0)).to_contain_text(two_slow_models[0])
    expect(columns.nth(1)).to_contain_text("50 tokens")
    first, second = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert first and second and second["x"] > first["x"]  # side by side
    assert_accessible(page)
    page.set_viewport_size({"width": 420, "height": 900})
    first, second = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
    assert first and second and second["y"] > first["y"]  # stacked on a narrow screen

    page.get_by_role("link", name=re.compile("Diff these two")).click()
    expect(page).to_have_url(re.compile(r"/diff/\?a=[0-9a-f]{24}&b=[0-9a-f]{24}$"))
    expect(page.locator(".diff-stat")).to_contain_text("% the same")
    assert_accessible(page)


def test_esc_stops_every_column_and_keeps_the_partial_answers(
    page: Page, asgi_live_server: AsgiLiveServer, two_slow_models: list[str]
) -> None:
    start_comparison(page, asgi_live_server.url, "Stop us both", "600")
    expect(page.locator(".compare-columns article.streaming .output:not(:empty)")).to_have_count(2)
    page.keyboard.press("Escape")
    cancelled = page.locator(".compare-columns article.compare-column[data-status=cancelled]")
    expect(cancelled).to_have_count(2)
    docs = records("Stop us both")
    assert {doc["status"] for doc in docs} == {"cancelled"}
    assert all(0 < int(str(doc["output_tokens"])) < 600 for doc in docs)


def test_bad_picks_show_the_reason_next_to_the_models(
    page: Page, asgi_live_server: AsgiLiveServer, two_slow_models: list[str]
) -> None:
    page.goto(f"{asgi_live_server.url}/compare/")
    page.get_by_role("checkbox", checked=True).first.uncheck()
    page.get_by_label("Prompt").fill("Only one")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#compare-models-error")).to_contain_text("pick at least 2")
    expect(page.get_by_label("Prompt")).to_have_value("Only one")
    assert records("Only one") == []


def test_diff_two_history_rows_picked_with_clicks_and_with_keys(
    page: Page, live_server: object, store_settings: SettingsWrapper
) -> None:
    base = str(live_server.url)  # type: ignore[attr-defined]
    scope = browser_scope(page, base)
    seed(scope, ["Third question", "Second question", "First question"])
    page.goto(f"{base}/history/")
    button = page.get_by_role("button", name="Diff selected")
    expect(button).to_be_disabled()
    assert_accessible(page)

    page.get_by_label(re.compile("Select for diff: Third question")).check()
    expect(button).to_be_disabled()
    page.get_by_label(re.compile("Select for diff: First question")).check()
    expect(button).to_be_enabled()
    button.click()
    expect(page).to_have_url(re.compile(r"/diff/\?pick=[0-9a-f]{24}&pick=[0-9a-f]{24}$"))
    expect(page.locator("#diff-inline del")).to_contain_text("third")
    expect(page.locator("#diff-inline ins")).to_contain_text("first")
    assert_accessible(page)
    page.get_by_role("link", name="Show side by side").click()
    expect(page.locator("#diff-a")).to_contain_text("third")
    expect(page.locator("#diff-b")).to_contain_text("first")
    assert_accessible(page)
    page.get_by_role("link", name="Swap A and B").click()
    expect(page.locator("#diff-a")).to_contain_text("first")
    page.get_by_role("link", name="Details of A").click()
    page.get_by_role("link", name="Diff with…").click()  # from an answer's page
    assert_accessible(page)
    page.get_by_role("link", name=re.compile("Second question")).click()
    expect(page.locator("#diff-inline del")).to_contain_text("first")
    expect(page.locator("#diff-inline ins")).to_contain_text("second")

    page.goto(f"{base}/history/")
    page.locator("h1").click()
    page.keyboard.press("j")  # the first row…
    page.keyboard.press("x")  # …selected for the diff
    page.keyboard.press("d")  # one is not enough: it says so and stays
    expect(page.locator("#diff-picks-status")).to_contain_text("exactly two")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(2)
    page.keyboard.press("d")
    expect(page).to_have_url(re.compile(r"/diff/\?pick="))
    expect(page.locator("#diff-inline del")).to_contain_text("third")
    expect(page.locator("#diff-inline ins")).to_contain_text("second")
