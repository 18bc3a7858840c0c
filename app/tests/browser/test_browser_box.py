"""The prompt box in Chromium: drafts, ↑ to edit the last prompt, /templates with Tab between variables,
stars and tags by click and by keys, and the history filtered by them."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from app.tests.browser.axe import assert_accessible
from app.tests.conftest_browser import AsgiLiveServer
from app.tests.history_seed import browser_scope, seed

pytestmark = [pytest.mark.browser]

DRAFTS = "Object.keys(localStorage).filter(k => k.startsWith('hfml.draft:')).length"


def wait_for_drafts(page: Page, count: int) -> None:
    """Poll from Python (the app's CSP refuses the string evaluation ``wait_for_function`` uses)."""
    deadline = time.monotonic() + 10
    while page.evaluate(DRAFTS) != count:
        assert time.monotonic() < deadline, f"expected {count} drafts, found {page.evaluate(DRAFTS)}"
        time.sleep(0.05)


def selection(page: Page) -> str:
    return str(
        page.evaluate(
            "(() => { const b = document.querySelector('#prompt-form textarea');"
            " return b.value.slice(b.selectionStart, b.selectionEnd); })()"
        )
    )


@pytest.mark.usefixtures("store_settings")
def test_draft_survives_reload_navigation_and_back(page: Page, live_server: object) -> None:
    base = str(live_server.url)  # type: ignore[attr-defined]
    page.goto(f"{base}/")
    box = page.get_by_label("Prompt", exact=True)
    box.press_sequentially("A draft <b>not</b> sent yet")
    page.locator("summary", has_text="Parameters").click()
    page.get_by_label("max_new_tokens").fill("7")
    page.reload()
    expect(box).to_have_value("A draft <b>not</b> sent yet")
    expect(page.get_by_label("max_new_tokens")).to_have_value("7")

    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(f"{base}/history/")
    page.go_back()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("A draft <b>not</b> sent yet")
    page.get_by_role("link", name="Stats").click()
    page.get_by_role("link", name="Prompt", exact=True).click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("A draft <b>not</b> sent yet")

    page.get_by_label("Prompt", exact=True).fill("")
    page.reload()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("")


@pytest.mark.usefixtures("app_settings")
def test_sending_clears_only_this_tabs_draft_and_arrow_up_edits_the_last_prompt(
    page: Page, asgi_live_server: AsgiLiveServer
) -> None:
    base = asgi_live_server.url
    page.goto(f"{base}/")
    box = page.get_by_label("Prompt", exact=True)
    box.fill("Sent from the first tab")
    box.press("Control+Enter")
    expect(page.locator("#result .answer")).to_be_visible()
    expect(page.locator("#recent-list .history-row").first).to_contain_text("Sent from the first tab")
    wait_for_drafts(page, 0)

    second = page.context.new_page()
    second.goto(f"{base}/")
    second.get_by_label("Prompt", exact=True).press_sequentially("Typed in the second tab")
    wait_for_drafts(second, 1)
    box.fill("Another one from the first tab")
    box.press("Control+Enter")
    expect(page.locator("#recent-list .history-row").first).to_contain_text("Another one from the first tab")
    second.reload()
    expect(second.get_by_label("Prompt", exact=True)).to_have_value("Typed in the second tab")

    # ↑ in the empty box puts the last prompt back to edit; ↓ undoes it while it is unchanged.
    box.fill("")
    box.press("ArrowUp")
    expect(box).to_have_value("Another one from the first tab")
    box.press("ArrowDown")
    expect(box).to_have_value("")
    second.close()


@pytest.mark.usefixtures("app_settings")
def test_template_inserted_by_keyboard_tab_through_variables_then_send(
    page: Page, asgi_live_server: AsgiLiveServer
) -> None:
    base = asgi_live_server.url
    page.goto(f"{base}/templates/")
    page.get_by_label("Name").fill("trip")
    page.get_by_label("Text").fill("Plan a trip to {{city}} for {{ days }} days.")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#template-list")).to_contain_text("/trip")
    expect(page.get_by_role("status").filter(has_text="Saved")).to_contain_text("Saved “/trip”.")

    page.get_by_label("Name").fill("broken")
    page.get_by_label("Text").fill("Broken {{city")
    page.get_by_role("button", name="Save template").click()
    error = page.locator("#new-body-error")
    expect(error).to_contain_text("is never closed")
    expect(page.get_by_label("Text")).to_have_value("Broken {{city")
    expect(page.locator("#template-list .template-item")).to_have_count(1)
    assert_accessible(page)

    page.get_by_role("link", name="Prompt", exact=True).click()
    box = page.get_by_label("Prompt", exact=True)
    box.focus()
    box.press_sequentially("/tr")
    listbox = page.get_by_role("listbox")
    expect(listbox).to_be_visible()
    option = listbox.get_by_role("option").first
    expect(option).to_contain_text("/trip")
    expect(option).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", str(option.get_attribute("id")))
    box.press("Escape")
    expect(listbox).to_be_hidden()
    box.press("Backspace")
    box.press_sequentially("r")
    expect(listbox).to_be_visible()
    box.press("ArrowDown")
    box.press("Enter")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("Plan a trip to {{city}} for {{ days }} days.")
    assert selection(page) == "{{city}}"
    box.press_sequentially("Paris")
    box.press("Tab")
    assert selection(page) == "{{ days }}"
    box.press("Shift+Tab")
    assert selection(page) == "{{ days }}"  # the only one left: Shift+Tab wraps to it
    box.press_sequentially("3")
    expect(box).to_have_value("Plan a trip to Paris for 3 days.")
    box.press("Tab")  # no variable left: the focus moves on
    expect(box).not_to_be_focused()

    box.focus()
    box.press("Control+Enter")
    expect(page.locator("#result .answer")).to_contain_text("Plan a trip to Paris for 3 days.")


@pytest.mark.usefixtures("store_settings")
def test_star_and_tag_by_click_and_keys_then_filter_history(page: Page, live_server: object) -> None:
    base = str(live_server.url)  # type: ignore[attr-defined]
    scope = browser_scope(page, base)
    newest, middle, oldest = seed(scope, ["Capital of France", "Tallest mountain", "Longest river"])
    page.goto(f"{base}/history/")
    rows = page.locator("#history-list .history-row")

    star = rows.nth(0).get_by_role("button", name="Star")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(rows.nth(0).get_by_role("button", name="Star")).to_have_attribute("aria-pressed", "true")
    expect(rows.nth(0).get_by_role("button", name="Star")).to_be_focused()

    page.locator("h1").click()
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1).locator(".row-link")).to_be_focused()
    page.keyboard.press("s")
    expect(rows.nth(1).get_by_role("button", name="Star")).to_have_attribute("aria-pressed", "true")
    expect(rows.nth(1).locator(".row-link")).to_be_focused()

    page.keyboard.press("t")
    tags = rows.nth(1).get_by_role("textbox", name="Tags")
    expect(tags).to_be_focused()
    tags.fill("Geo, trip")
    tags.press("Enter")
    expect(rows.nth(1).locator(".tag-list")).to_have_text(re.compile(r"#geo\s*#trip"))
    expect(rows.nth(1).locator(".row-link")).to_be_focused()

    page.keyboard.press("j")
    page.keyboard.press("t")
    bad = rows.nth(2).get_by_role("textbox", name="Tags")
    bad.fill("fine <script>")
    bad.press("Enter")
    expect(rows.nth(2).get_by_role("alert")).to_contain_text("“<script>” is not a valid tag")
    expect(rows.nth(2).get_by_role("textbox", name="Tags")).to_be_focused()
    page.keyboard.press("Escape")
    expect(rows.nth(2).locator("details.tag-editor")).not_to_have_attribute("open", "")
    expect(rows.nth(2).locator(".row-link")).to_be_focused()

    rows.nth(2).locator("summary", has_text="Tags").click()
    rows.nth(2).get_by_role("textbox", name="Tags").fill("geo")
    rows.nth(2).get_by_role("button", name="Save tags").click()
    expect(rows.nth(2).locator(".tag-list")).to_have_text("#geo")

    page.reload()
    assert_accessible(page)
    page.get_by_label("Starred only").check()
    expect(page).to_have_url(re.compile(r"starred=1"))
    expect(rows).to_have_count(2)
    expect(page.locator("#history-list")).not_to_contain_text("Longest river")
    page.get_by_label("Tag", exact=True).select_option("geo")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Tallest mountain")
    page.get_by_label("Starred only").uncheck()
    expect(rows).to_have_count(2)
    expect(page.locator("#history-list")).to_contain_text("Longest river")

    page.get_by_label("Search prompts and answers").fill("tag:trip")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Tallest mountain")
    assert_accessible(page)

    # The detail page: "s" toggles its star, its tag editor saves in place.
    page.goto(f"{base}/history/{oldest.id}/")
    page.locator("h1").click()
    page.keyboard.press("s")
    expect(page.get_by_role("button", name="Star")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("t")
    expect(page.get_by_role("textbox", name="Tags")).to_be_focused()
    page.keyboard.type(" river")
    page.keyboard.press("Enter")
    expect(page.locator(".tag-list")).to_have_text(re.compile(r"#geo\s*#river"))
    assert_accessible(page)
    assert newest.id and middle.id
