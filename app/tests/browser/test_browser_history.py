"""A person browses, searches, filters, deletes, exports and imports their history in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.tests.history_seed import EARLIER, browser_scope, seed

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("store_settings")]


def url(live_server: object) -> str:
    return str(live_server.url)  # type: ignore[attr-defined]


def test_search_as_you_type_shows_highlighted_snippets(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["What is the Capital of France?", "Best pizza in Rome", "Capital of Spain"])
    page.goto(f"{url(live_server)}/history/")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Search prompts and answers").press_sequentially("capital fr", delay=40)

    rows = page.locator("#history-list .history-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".row-prompt mark")).to_have_text(["Capital", "France"])
    expect(page).to_have_url(f"{url(live_server)}/history/?q=capital%20fr")
    expect(page.locator("#history-announce")).to_have_text("1 interaction shown.")
    assert page.evaluate("window.__sameDocument") is True


def test_load_more_then_infinite_scroll_without_duplicates(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, [f"Question {n:02d}" for n in range(45)])
    page.goto(f"{url(live_server)}/history/")
    rows = page.locator("#history-list .history-row")
    expect(rows).to_have_count(20)

    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(40)
    page.mouse.wheel(0, 20_000)  # scrolling down reveals the next "Load more": it loads by itself
    expect(rows).to_have_count(45)
    expect(page.locator("#history-list .load-more")).to_have_count(0)
    prompts = rows.locator(".row-prompt").all_inner_texts()
    assert prompts == [f"Question {n:02d}" for n in range(45)]


def test_back_and_forward_restore_the_filtered_list(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["alpha question", "beta question"], model="model-a")
    seed(scope, ["gamma question"], model="model-b", newest=EARLIER)
    page.goto(f"{url(live_server)}/history/")
    rows = page.locator("#history-list .history-row")
    expect(rows).to_have_count(3)

    page.get_by_label("Model").fill("model-b")
    page.get_by_label("Model").press("Tab")  # change → filtered list, pushed URL
    expect(rows).to_have_count(1)
    expect(page).to_have_url(f"{url(live_server)}/history/?model=model-b")

    page.go_back()
    expect(page).to_have_url(f"{url(live_server)}/history/")
    expect(rows).to_have_count(3)
    page.go_forward()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("gamma question")


def test_open_a_row_in_place_then_close_it(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    item = seed(scope, ["Open me"])[0]
    page.goto(f"{url(live_server)}/history/")
    page.locator("#history-list .row-link").first.click()
    detail = page.locator("#history-detail article.interaction")
    expect(detail).to_contain_text("Open me")
    expect(page).to_have_url(f"{url(live_server)}/history/{item.id}/")
    expect(detail.get_by_role("link", name="Reuse prompt")).to_have_attribute("href", f"/?answer={item.id}#prompt-form")
    page.locator("#history-detail").get_by_role("link", name="Back to the history").click()
    expect(detail).to_have_count(0)
    expect(page).to_have_url(f"{url(live_server)}/history/")


def test_copy_button_copies_the_prompt(page: Page, live_server: object) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url(live_server))
    scope = browser_scope(page, url(live_server))
    item = seed(scope, ["Copy this prompt"])[0]
    page.goto(f"{url(live_server)}/history/{item.id}/")
    page.get_by_role("button", name="Copy prompt").click()
    expect(page.locator(".copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == "Copy this prompt"


def test_delete_offers_undo_that_restores_the_row_and_stays_deleted_without_it(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["Keep me", "Delete me"])
    page.goto(f"{url(live_server)}/history/")
    row = page.locator("#history-list .history-row").filter(has_text="Delete me")
    row.get_by_role("button", name="Delete").click()

    undo = page.get_by_role("button", name="Undo")
    expect(undo).to_be_focused()
    expect(page.locator("#history-list")).to_contain_text("Deleted “Delete me”.")
    undo.click()
    restored = page.locator("#history-list .row-link").filter(has_text="Delete me")
    expect(restored).to_be_focused()

    page.locator("#history-list .history-row").filter(has_text="Delete me").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("button", name="Undo")).to_be_visible()
    page.reload()
    expect(page.locator("#history-list .row-prompt")).to_have_text(["Keep me"])


def test_export_delete_all_then_import_round_trip(page: Page, live_server: object, tmp_path: Path) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["Round trip one", "Round trip two"])
    page.goto(f"{url(live_server)}/history/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export JSON Lines").click()
    exported = tmp_path / "history.jsonl"
    download_info.value.save_as(exported)
    assert len(exported.read_text(encoding="utf-8").splitlines()) == 2

    page.get_by_role("link", name="Delete all…").click()
    page.get_by_role("button", name="Yes, delete everything").click()
    expect(page.locator(".notice")).to_have_text("Deleted 2 interactions.")
    expect(page.locator("#history-list .history-row")).to_have_count(0)

    page.get_by_role("link", name="Import").click()
    page.get_by_label("JSON Lines file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("2 imported, 0 already present, 0 rejected")
    page.get_by_label("JSON Lines file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("0 imported, 2 already present")
    page.get_by_role("link", name="Open the history").click()
    expect(page.locator("#history-list .row-prompt")).to_have_text(["Round trip one", "Round trip two"])


def test_history_fits_a_narrow_phone_screen(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["A fairly long prompt " * 5])
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{url(live_server)}/history/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
