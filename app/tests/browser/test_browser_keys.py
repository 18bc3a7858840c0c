"""Every keyboard shortcut, driven in Chromium: /, j/k/arrows, Enter, Esc, ?, prompt recall, Enter-sends, cancel."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from app.tests.history_seed import browser_scope, seed

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("store_settings")]


def url(live_server: object) -> str:
    return str(live_server.url)  # type: ignore[attr-defined]


def test_slash_focuses_the_search_but_types_a_slash_inside_a_field(page: Page, live_server: object) -> None:
    page.goto(f"{url(live_server)}/history/")
    page.locator("h1").click()
    page.keyboard.press("/")
    search = page.get_by_label("Search prompts and answers")
    expect(search).to_be_focused()
    page.keyboard.type("a/b?j")
    expect(search).to_have_value("a/b?j")
    expect(page.locator("#shortcuts")).not_to_be_visible()


def test_slash_on_another_page_opens_the_history_search(page: Page, live_server: object) -> None:
    page.goto(f"{url(live_server)}/stats/")
    page.locator("h1").first.click()
    page.keyboard.press("/")
    expect(page).to_have_url(f"{url(live_server)}/history/#search")
    expect(page.get_by_label("Search prompts and answers")).to_be_focused()


def test_j_k_and_arrows_move_through_rows_enter_opens_esc_closes(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["First row", "Second row", "Third row"])
    page.goto(f"{url(live_server)}/history/")
    page.locator("h1").click()
    links = page.locator("#history-list .row-link")

    page.keyboard.press("j")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("j")
    expect(links.nth(1)).to_be_focused()
    expect(page.locator("#history-list .history-row.is-selected")).to_contain_text("Second row")
    page.keyboard.press("ArrowDown")
    expect(links.nth(2)).to_be_focused()
    page.keyboard.press("k")
    page.keyboard.press("ArrowUp")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("j")

    page.keyboard.press("Enter")
    detail = page.locator("#history-detail article.interaction")
    expect(detail).to_contain_text("Second row")
    expect(page.locator("#history-detail")).to_be_focused()
    page.keyboard.press("Escape")
    expect(detail).to_have_count(0)
    expect(page).to_have_url(f"{url(live_server)}/history/")
    expect(page.locator("#history-list .row-link").nth(1)).to_be_focused()


def test_question_mark_opens_the_cheat_sheet_and_esc_closes_it(page: Page, live_server: object) -> None:
    page.goto(f"{url(live_server)}/history/")
    page.locator("h1").click()
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    for shortcut in (
        "Send the prompt",
        "Earlier / later prompts",
        "Cancel the running request",
        "Search the history",
        "Next interaction",
        "Previous interaction",
        "Open the selected interaction",
        "Show this list",
    ):
        expect(dialog).to_contain_text(shortcut)
    page.keyboard.press("Escape")
    expect(dialog).not_to_be_visible()


def test_shortcuts_do_nothing_while_typing_in_the_prompt(page: Page, live_server: object) -> None:
    page.goto(f"{url(live_server)}/")
    box = page.get_by_label("Prompt")
    box.press_sequentially("j k / ?")
    expect(box).to_have_value("j k / ?")
    expect(page.locator("#shortcuts")).not_to_be_visible()
    expect(page).to_have_url(f"{url(live_server)}/")


def test_arrow_keys_recall_earlier_prompts_in_an_empty_box(page: Page, live_server: object) -> None:
    scope = browser_scope(page, url(live_server))
    seed(scope, ["Newest prompt", "Older prompt"])
    page.goto(f"{url(live_server)}/")
    box = page.get_by_label("Prompt")
    box.focus()
    box.press("ArrowUp")
    expect(box).to_have_value("Newest prompt")
    box.press("ArrowUp")
    expect(box).to_have_value("Older prompt")
    box.press("ArrowDown")
    expect(box).to_have_value("Newest prompt")
    box.press("ArrowDown")
    expect(box).to_have_value("")
    box.fill("my own text")
    box.press("ArrowUp")
    expect(box).to_have_value("my own text")


def test_enter_sends_option_shift_enter_newline_and_ime_composition(page: Page, live_server: object) -> None:
    posted: list[str] = []

    def answer(route: Route) -> None:
        posted.append(route.request.post_data or "")
        route.fulfill(status=200, content_type="text/html", body='<p class="sent">sent</p>')

    page.route("**/stream/", answer)
    page.goto(f"{url(live_server)}/")
    page.get_by_label("Enter sends").check()
    box = page.get_by_label("Prompt")
    box.press_sequentially("hello")
    box.press("Shift+Enter")
    box.press_sequentially("world")
    expect(box).to_have_value("hello\nworld")
    # An IME composing Enter (e.g. picking a Japanese candidate) must not send: count requests it starts.
    started = box.evaluate(
        """b => {
            let n = 0;
            const count = () => { n += 1; };
            document.addEventListener("htmx:beforeRequest", count);
            const init = {key: "Enter", isComposing: true, bubbles: true, cancelable: true};
            b.dispatchEvent(new KeyboardEvent("keydown", init));
            document.removeEventListener("htmx:beforeRequest", count);
            return n;
        }"""
    )
    assert started == 0
    assert posted == []
    box.press("Enter")
    expect(page.locator("#result .sent")).to_have_text("sent")
    assert "prompt=hello%0D%0Aworld" in posted[0] or "prompt=hello%0Aworld" in posted[0]
    page.reload()
    expect(page.get_by_label("Enter sends")).to_be_checked()


def test_esc_cancels_a_request_in_flight(page: Page, live_server: object) -> None:
    held: list[Route] = []
    page.route("**/stream/", lambda route: held.append(route))  # never answered: the request hangs
    page.goto(f"{url(live_server)}/")
    page.evaluate("document.addEventListener('prompt:cancel', () => { window.__cancelled = true; })")
    box = page.get_by_label("Prompt")
    box.fill("a slow question")
    box.press("Control+Enter")
    generate = page.get_by_role("button", name="Generate")
    expect(generate).to_be_disabled()
    box.press("Escape")
    expect(generate).to_be_enabled()
    expect(page.locator("#busy")).to_be_hidden()
    assert page.evaluate("window.__cancelled") is True
    assert len(held) == 1
