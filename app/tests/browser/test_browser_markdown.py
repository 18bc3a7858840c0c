"""Answers show as rendered markdown in Chromium: headings, tables, highlighted code with copy buttons;
hostile markdown/HTML in a generated or an imported answer runs nothing and loads nothing; the
stream is aria-busy while it runs and "Answer ready." is announced once at the end.

Each hostile payload would set ``window.__xss``, change the title or open a dialog if it ever ran;
``securitypolicyviolation`` events would show anything the Content-Security-Policy had to block
(an inline style or script that made it into the DOM); every request the page makes is recorded, so
an image that tried to load from the payloads' host would show up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from app.tests.browser.scripted import SAMPLE_CODE, SAMPLE_IMAGE_HOST, SAMPLE_MARKDOWN, Script, install_script
from app.tests.conftest_browser import AsgiLiveServer

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_settings")]

IMAGE_HOST, CODE, MARKDOWN = SAMPLE_IMAGE_HOST, SAMPLE_CODE, SAMPLE_MARKDOWN
HOSTILE = "\n\n".join(
    [
        "<script>window.__xss=1;document.title='XSS'</script>",
        "<img src=x onerror=\"window.__xss=2;document.title='XSS'\">",
        f'<img src="http://{IMAGE_HOST}/raw.png">',
        f"![tracker](http://{IMAGE_HOST}/md.png)",
        f"![tracker2][img]\n\n[img]: https://{IMAGE_HOST}/ref.png",
        '<svg onload="window.__xss=3"><circle r="5"/></svg>',
        '<iframe srcdoc="<script>parent.__xss=4</script>"></iframe>',
        '<p style="position:fixed;inset:0;background:red" id="cover">cover</p>',
        "[click](javascript:window.__xss=5)",
        "[click2](JaVaScRiPt:window.__xss=6)",
        "[click3](jav&#x09;ascript:window.__xss=7)",
        "[click4](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194c3M9ODwvc2NyaXB0Pg==)",
        "[click5](vbscript:msgbox(1))",
        '[title](https://ok.example "x\\" onmouseover=\\"window.__xss=9")',
        '<a href="javascript:window.__xss=10" id=xsslink>raw link</a>',
        "```html\n<script>window.__xss=11</script>\n```",
        '<details open ontoggle="window.__xss=12">d</details>',
        "<style>body{display:none}</style>",
        "`<script>window.__xss=13</script>`",
    ]
)
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
window.__announced = [];
new MutationObserver(function () {
  var live = document.getElementById('answer-announce');
  if (live && live.textContent) window.__announced.push(live.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture
def scripted_answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    yield from install_script(monkeypatch)


class Watch:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", self._record)
        page.add_init_script(WATCH)

    def _record(self, request: Request) -> None:
        self.requests.append(request.url)

    def assert_nothing_ran(self, where: str) -> None:
        page = self.page
        assert page.evaluate("window.__xss") is None, where
        assert page.title() != "XSS", where
        assert self.dialogs == [], where
        assert page.evaluate("window.__cspViolations") == [], where
        assert page.locator("#xsslink, #cover, main img, main svg:not(.chart), main iframe").count() == 0, where
        assert page.locator("body").is_visible(), where
        assert [url for url in self.requests if IMAGE_HOST in url] == [], where

    def assert_links_are_safe(self, root: str) -> None:
        links = self.page.locator(f"{root} a").evaluate_all(
            "links => links.map(a => [a.getAttribute('href'), a.getAttribute('rel'), a.getAttributeNames()])"
        )
        assert links, "expected some links"
        for href, rel, names in links:
            assert href.lower().startswith(("http://", "https://", "mailto:")), href
            assert rel == "nofollow noopener ugc", href
            assert not [name for name in names if name.startswith("on") or name == "style"], names


def ask(page: Page, base: str, prompt: str) -> None:
    page.goto(f"{base}/")
    box = page.get_by_label("Prompt")
    box.fill(prompt)
    box.press("Control+Enter")


def finished_answer(page: Page) -> object:
    answer = page.locator("#result article.answer[data-status]:not(.streaming)")
    expect(answer).to_be_visible()
    return answer


def test_generated_markdown_renders_with_copy_buttons(
    page: Page, asgi_live_server: AsgiLiveServer, scripted_answers: Script
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_live_server.url)
    watch = Watch(page)
    scripted_answers.answers["Show me markdown"] = MARKDOWN
    ask(page, asgi_live_server.url, "Show me markdown")
    answer = page.locator("#result article.answer[data-status=ok]")
    expect(answer).to_be_visible()
    body = answer.locator(".markdown")

    expect(body.get_by_role("heading", name="Capitals", level=1)).to_be_visible()
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("s")).to_have_text("strike")
    expect(body.locator("table th")).to_have_text(["Country", "Capital"])
    expect(body.locator("table td.align-right")).to_have_text(["Paris", "Madrid"])
    expect(body.locator("li")).to_have_text(["one", "two"])
    expect(body.locator("blockquote code")).to_have_text("inline code")
    expect(body.locator(".code-block")).to_have_count(2)
    expect(body.locator(".code-block .code-lang")).to_have_text("python")
    expect(body.locator(".code-block .highlight .k").first).to_have_text("def")
    expect(body.get_by_role("link", name="A cat")).to_have_attribute("href", f"http://{IMAGE_HOST}/cat.png")
    watch.assert_links_are_safe("#result .markdown")
    watch.assert_nothing_ran("rendered answer")
    assert page.locator("[style]").count() == 0

    copy_code = body.get_by_role("button", name="Copy code (python)")
    expect(copy_code).to_be_visible()
    copy_code.focus()
    page.keyboard.press("Enter")  # keyboard works: a real button
    expect(copy_code).to_have_text("Copied")
    expect(answer.locator(".copy-status")).to_have_text("Code copied.")
    assert page.evaluate("navigator.clipboard.readText()") == CODE
    body.get_by_role("button", name="Copy code").nth(1).click()
    assert page.evaluate("navigator.clipboard.readText()") == "plain block\n"

    answer.get_by_role("button", name="Copy answer").click()
    expect(answer.locator(".copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == MARKDOWN

    page.reload()  # the page itself (not the htmx swap) renders the same answer
    expect(page.locator("#result .markdown table")).to_be_visible()
    expect(page.locator("#result .markdown .copy-code")).to_have_count(2)


def test_hostile_generated_answer_runs_nothing_and_loads_nothing(
    page: Page, asgi_live_server: AsgiLiveServer, scripted_answers: Script
) -> None:
    watch = Watch(page)
    scripted_answers.answers["Be hostile"] = HOSTILE
    ask(page, asgi_live_server.url, "Be hostile")
    answer = page.locator("#result article.answer[data-status=ok]")
    expect(answer).to_be_visible()
    body = answer.locator(".markdown")
    expect(body).to_contain_text("<script>window.__xss=1;document.title='XSS'</script>")  # shown as text
    expect(body).to_contain_text("[click](javascript:window.__xss=5)")
    expect(body.get_by_role("link", name="tracker", exact=True)).to_have_attribute(
        "href", f"http://{IMAGE_HOST}/md.png"
    )
    watch.assert_links_are_safe("#result .markdown")
    body.get_by_role("link", name="title").hover()
    watch.assert_nothing_ran("after the done swap")

    detail = answer.get_by_role("link", name="details").get_attribute("href")
    for url in (page.url, f"{asgi_live_server.url}{detail}", f"{asgi_live_server.url}/history/"):
        page.goto(url)
        page.wait_for_load_state("load")
        watch.assert_nothing_ran(url)
    page.goto(f"{asgi_live_server.url}{detail}")
    watch.assert_links_are_safe("main .markdown")


def test_hostile_imported_answer_runs_nothing_and_loads_nothing(
    page: Page, asgi_live_server: AsgiLiveServer, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_live_server.url)
    watch = Watch(page)
    exported = tmp_path / "hostile.jsonl"
    record = {"prompt": "Imported <b>prompt</b> **not markdown**", "created_at": "2026-11-01T10:00:00Z",
              "output": "Imported **answer**\n\n" + HOSTILE, "model": "elsewhere"}  # fmt: skip
    exported.write_text(json.dumps(record) + "\n", encoding="utf-8")

    page.goto(f"{asgi_live_server.url}/history/import/")
    page.get_by_label("JSON Lines file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-report")).to_contain_text("1 imported")
    page.get_by_role("link", name="Open the history").click()
    watch.assert_nothing_ran("history list")

    page.locator("#history-list .row-link").first.click()  # opened in place by htmx
    panel = page.locator("#history-detail article.interaction")
    expect(panel.locator(".markdown strong").first).to_have_text("answer")
    expect(panel.locator("#prompt-text")).to_have_text(record["prompt"])  # prompts stay plain text
    watch.assert_links_are_safe("#history-detail .markdown")
    watch.assert_nothing_ran("detail panel")

    page.reload()  # the detail page on its own
    body = page.locator("main article.interaction .markdown")
    expect(body).to_contain_text("<img src=x onerror=")
    watch.assert_nothing_ran("detail page")
    page.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("navigator.clipboard.readText()") == record["output"]  # the markdown source


def test_stream_is_busy_while_it_runs_and_announced_once(
    page: Page, asgi_live_server: AsgiLiveServer, scripted_answers: Script
) -> None:
    watch = Watch(page)
    scripted_answers.answers["Stream markdown"] = MARKDOWN
    scripted_answers.hold = True
    ask(page, asgi_live_server.url, "Stream markdown")

    streaming = page.locator("#result article.streaming")
    expect(streaming).to_have_attribute("aria-busy", "true")
    expect(streaming.locator(".output")).to_contain_text("# Capitals")  # the raw text, as it arrives
    expect(streaming.locator("h1")).to_have_count(0)
    live = page.evaluate(
        "() => { const o = document.querySelector('#result article.streaming .output');"
        " return o.closest('[aria-live], [role=log], [role=alert], [role=status]') !== null; }"
    )
    assert live is False, "streamed tokens must not sit in a live region"
    assert page.evaluate("window.__announced") == []

    scripted_answers.release.set()
    answer = page.locator("#result article.answer[data-status=ok]")
    expect(answer.locator(".markdown h1")).to_have_text("Capitals")  # the rendered answer replaced the text
    expect(page.locator("#answer-announce")).to_have_text("Answer ready.")
    assert answer.get_attribute("aria-busy") is None
    expect(page.locator("#result article.streaming")).to_have_count(0)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__announced") == ["Answer ready."]
    watch.assert_nothing_ran("stream")
