"""Every page, and every state a page can be in, passes axe-core (no serious or critical violation),
in the light and in the dark colour scheme.

Each entry of ``PAGES`` names a state and a setup that brings a fresh page there (it may seed the
store, log in, type, click); the test then runs axe once per colour scheme. A new page is one more
``Visit`` in the list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from app.domain.interaction import Interaction, Scope
from app.services.mongo_repo import get_repository
from app.tests.browser.axe import assert_accessible, axe_violations
from app.tests.browser.scripted import SAMPLE_MARKDOWN, Script, install_script
from app.tests.conftest_browser import AsgiLiveServer
from app.tests.history_seed import browser_scope, seed

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings")]

SCHEMES = ("light", "dark")
USERNAME, PASSWORD = "reader", "a-long-test-password"


@dataclass
class Site:
    page: Page
    base: str
    script: Script
    tmp_path: Path

    def go(self, path: str) -> None:
        response = self.page.goto(f"{self.base}{path}")
        assert response is not None
        self.page.wait_for_load_state("load")

    def scope(self) -> Scope:
        return browser_scope(self.page, self.base)

    def answer(self, output: str = SAMPLE_MARKDOWN, prompt: str = "Capitals as a table, please") -> Interaction:
        """A finished answer of this browser's visitor, with markdown in it."""
        interaction = Interaction(
            prompt=prompt, output=output, model="tiny", task="text-generation", **self.scope().owner_fields()
        )
        get_repository().import_batch([interaction])
        return interaction

    def ask(self, prompt: str) -> None:
        self.go("/")
        box = self.page.get_by_label("Prompt")
        box.fill(prompt)
        box.press("Control+Enter")


@dataclass(frozen=True)
class Visit:
    name: str
    setup: Callable[[Site], None]


def _prompt(site: Site) -> None:
    site.go("/")


def _prompt_with_errors(site: Site) -> None:
    site.go("/")
    site.page.get_by_text("Parameters").click()
    site.page.locator("input[name=max_new_tokens]").fill("0")
    site.page.get_by_role("button", name="Generate").click()
    expect(site.page.locator("#prompt-form .field-error").first).to_be_visible()


def _answer_page(site: Site) -> None:
    answer = site.answer()
    site.go(f"/?answer={answer.id}")
    expect(site.page.locator("#result .markdown table")).to_be_visible()


def _answer_swapped_in(site: Site) -> None:
    site.script.answers["Swap a markdown answer in"] = SAMPLE_MARKDOWN
    site.ask("Swap a markdown answer in")
    expect(site.page.locator("#result article.answer[data-status=ok] .markdown .copy-code").first).to_be_visible()
    expect(site.page.locator("#answer-announce")).to_have_text("Answer ready.")


def _mid_stream(site: Site) -> None:
    site.script.answers["Stream slowly"] = SAMPLE_MARKDOWN
    site.script.hold = True
    site.ask("Stream slowly")
    expect(site.page.locator("#result article.streaming[aria-busy=true] .output")).not_to_be_empty()
    expect(site.page.locator("#result .stream-status")).to_have_text("Generating…")


def _history_empty(site: Site) -> None:
    site.go("/history/")
    expect(site.page.locator(".empty-results")).to_be_visible()


def _history_rows(site: Site) -> None:
    scope = site.scope()
    seed(scope, ["What is the capital of France?", "Best pizza in Rome", "Capital of Spain"])
    site.answer()
    site.go("/history/")
    expect(site.page.locator("#history-list .history-row")).to_have_count(4)


def _history_search(site: Site) -> None:
    seed(site.scope(), ["What is the capital of France?", "Capital of Spain", "Pizza"])
    site.go("/history/?q=capital")
    expect(site.page.locator("#history-list mark").first).to_be_visible()


def _history_no_match(site: Site) -> None:
    seed(site.scope(), ["Pizza"])
    site.go("/history/?q=zebra&status=error")
    expect(site.page.locator(".empty-results")).to_be_visible()


def _history_detail_panel(site: Site) -> None:
    site.answer()
    site.go("/history/")
    site.page.locator("#history-list .row-link").first.click()
    expect(site.page.locator("#history-detail article.interaction .markdown")).to_be_visible()


def _history_deleted_row(site: Site) -> None:
    seed(site.scope(), ["Keep me", "Delete me"])
    site.go("/history/")
    site.page.locator("#history-list .history-row").filter(has_text="Delete me").get_by_role("button").last.click()
    expect(site.page.get_by_role("button", name="Undo")).to_be_visible()


def _interaction_detail(site: Site) -> None:
    answer = site.answer()
    site.go(f"/history/{answer.id}/")
    expect(site.page.locator("main .markdown .code-block").first).to_be_visible()


def _import_page(site: Site) -> None:
    site.go("/history/import/")


def _import_report(site: Site) -> None:
    upload = site.tmp_path / "import.jsonl"
    good = {"prompt": "Imported", "created_at": "2026-11-01T10:00:00Z", "output": SAMPLE_MARKDOWN}
    upload.write_text(json.dumps(good) + "\nnot json\n", encoding="utf-8")
    site.go("/history/import/")
    site.page.get_by_label("JSON Lines file").set_input_files(upload)
    site.page.get_by_role("button", name="Import").click()
    expect(site.page.locator("#import-report table.rejected")).to_be_visible()


def _delete_all(site: Site) -> None:
    seed(site.scope(), ["Something to delete"])
    site.go("/history/delete-all/")


def _shortcuts_dialog(site: Site) -> None:
    site.go("/history/")
    site.page.get_by_role("button", name="?").click()
    expect(site.page.locator("#shortcuts")).to_be_visible()


def _login(site: Site) -> None:
    site.go("/accounts/login/?next=/history/")


def _login_failed(site: Site) -> None:
    site.go("/accounts/login/")
    site.page.get_by_label("Username").fill("nobody")
    site.page.get_by_label("Password").fill("wrong")
    site.page.get_by_role("button", name="Log in").click()
    expect(site.page.locator(".problem")).to_be_visible()


def _logged_in_history(site: Site) -> None:
    site.scope()  # a visitor with a session first: after login it may claim its history
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    site.go("/accounts/login/?next=/history/")
    site.page.get_by_label("Username").fill(USERNAME)
    site.page.get_by_label("Password").fill(PASSWORD)
    site.page.get_by_role("button", name="Log in").click()
    expect(site.page.get_by_role("button", name="Log out")).to_be_visible()


def _stats(site: Site) -> None:
    seed(site.scope(), ["One", "Two", "Three"])
    site.go("/stats/?range=all")


def _stats_empty(site: Site) -> None:
    site.go("/stats/")


def _not_found(site: Site) -> None:
    site.go("/history/0123456789abcdef01234567/")
    expect(site.page.locator(".problem")).to_be_visible()


def _unknown_url(site: Site) -> None:
    site.go("/no/such/page/")


def _conversation(site: Site) -> None:
    first = site.answer(prompt="First question")
    follow = Interaction(
        prompt="A follow-up",
        output=SAMPLE_MARKDOWN,
        model="tiny",
        task="text-generation",
        conversation_id=first.id,
        parent_id=first.id,
        **site.scope().owner_fields(),
    )
    sibling = Interaction(
        prompt="An edited follow-up",
        output="Another *version*.",
        model="tiny",
        task="text-generation",
        conversation_id=first.id,
        parent_id=first.id,
        **site.scope().owner_fields(),
    )
    get_repository().import_batch([follow, sibling])
    site.go(f"/conversations/{first.id}/?at={follow.id}")
    expect(site.page.locator(".turn")).to_have_count(2)


def _follow_up_form(site: Site) -> None:
    answer = site.answer()
    site.go(f"/?follow={answer.id}")
    expect(site.page.locator(".follow-up")).to_be_visible()


def _templates(site: Site) -> None:
    site.go("/templates/")
    site.page.locator("#new-template-name").fill("summary")
    site.page.locator("#new-template-body").fill("Summarise {{text}} in {{n}} words")
    site.page.get_by_role("button", name="Save template").click()
    expect(site.page.locator("#template-list li")).to_have_count(1)


def _templates_error(site: Site) -> None:
    site.go("/templates/")
    site.page.locator("#new-template-name").fill("broken")
    site.page.locator("#new-template-body").fill("Unclosed {{text")
    site.page.get_by_role("button", name="Save template").click()
    expect(site.page.locator(".field-error").first).to_be_visible()


def _two_answers(site: Site) -> tuple[Interaction, Interaction]:
    return site.answer(output="The quick brown fox jumps."), site.answer(output="The slow brown fox sleeps.")


def _compare(site: Site) -> None:
    site.go("/compare/")


def _comparison(site: Site) -> None:
    a, b = _two_answers(site)
    for item in (a, b):
        get_repository().collection.update_one({"_id": ObjectId(item.id)}, {"$set": {"comparison_id": a.id}})
    site.go(f"/compare/{a.id}/")


def _diff(site: Site) -> None:
    a, b = _two_answers(site)
    site.go(f"/diff/?a={a.id}&b={b.id}")
    expect(site.page.locator("ins").first).to_be_visible()


def _diff_side_by_side(site: Site) -> None:
    a, b = _two_answers(site)
    site.go(f"/diff/?a={a.id}&b={b.id}&view=side")


def _diff_pick(site: Site) -> None:
    a, _ = _two_answers(site)
    site.go(f"/diff/pick/?a={a.id}")


def _history_marks(site: Site) -> None:
    answer = site.answer()
    site.go(f"/history/{answer.id}/")
    site.page.locator("main .star-button").first.click()
    expect(site.page.locator("main .star-button[aria-pressed=true]").first).to_be_visible()
    site.go("/history/?starred=1")


PAGES = [
    Visit("prompt", _prompt),
    Visit("prompt-with-errors", _prompt_with_errors),
    Visit("answer-page", _answer_page),
    Visit("answer-swapped-in", _answer_swapped_in),
    Visit("mid-stream", _mid_stream),
    Visit("history-empty", _history_empty),
    Visit("history-rows", _history_rows),
    Visit("history-search", _history_search),
    Visit("history-no-match", _history_no_match),
    Visit("history-detail-panel", _history_detail_panel),
    Visit("history-deleted-row", _history_deleted_row),
    Visit("interaction-detail", _interaction_detail),
    Visit("history-import", _import_page),
    Visit("history-import-report", _import_report),
    Visit("history-delete-all", _delete_all),
    Visit("shortcuts-dialog", _shortcuts_dialog),
    Visit("login", _login),
    Visit("login-failed", _login_failed),
    Visit("logged-in-history", _logged_in_history),
    Visit("stats", _stats),
    Visit("stats-empty", _stats_empty),
    Visit("not-found", _not_found),
    Visit("unknown-url", _unknown_url),
    Visit("conversation", _conversation),
    Visit("follow-up-form", _follow_up_form),
    Visit("templates", _templates),
    Visit("templates-error", _templates_error),
    Visit("compare", _compare),
    Visit("comparison", _comparison),
    Visit("diff", _diff),
    Visit("diff-side-by-side", _diff_side_by_side),
    Visit("diff-pick", _diff_pick),
    Visit("history-starred", _history_marks),
]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    yield from install_script(monkeypatch)


@pytest.mark.parametrize("visit", PAGES, ids=[visit.name for visit in PAGES])
def test_page_has_no_serious_accessibility_violation(
    visit: Visit, page: Page, asgi_live_server: AsgiLiveServer, scripted: Script, tmp_path: Path
) -> None:
    visit.setup(Site(page=page, base=asgi_live_server.url, script=scripted, tmp_path=tmp_path))
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is (scheme == "dark")
        try:
            assert_accessible(page)
        except AssertionError as exc:
            raise AssertionError(f"{visit.name} ({scheme} scheme): {exc}") from None


def test_axe_really_reports_violations(page: Page, asgi_live_server: AsgiLiveServer) -> None:
    """Guard against a vacuous pass: an unlabelled button and unreadable text are caught, in either scheme."""
    page.goto(f"{asgi_live_server.url}/")
    page.evaluate(
        "() => { const b = document.createElement('button'); document.querySelector('main').appendChild(b);"
        " const p = document.createElement('p'); p.textContent = 'faint'; p.className = 'faint-test';"
        " document.querySelector('main').appendChild(p);"
        " const s = new CSSStyleSheet(); s.replaceSync('.faint-test { color: #eee; background: #fff; }');"
        " document.adoptedStyleSheets = [s]; }"
    )
    rules = {violation["id"] for violation in axe_violations(page)}
    assert {"button-name", "color-contrast"} <= rules
