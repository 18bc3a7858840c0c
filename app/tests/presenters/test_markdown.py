"""The answer renderer: CommonMark + tables + strikethrough in, allowlisted HTML out, whatever comes in."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import Context, Template

from app.presenters import code_style
from app.presenters.markdown import (
    _CACHE,
    LINK_REL,
    MAX_RENDER_CHARS,
    TAGS,
    allowed_url,
    render_markdown,
)

ROOT = Path(__file__).resolve().parents[3]


class Elements(HTMLParser):
    """Every start tag of a fragment with its attributes, and the text outside tags."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def assert_safe(html: str) -> Elements:
    """Only allowlisted tags; no event handler, style, src or id; every href allowed and nofollow'd."""
    elements = Elements(html)
    for tag, attrs in elements.tags:
        assert tag in TAGS, (tag, html)
        for name in attrs:
            assert not name.startswith("on"), (tag, name, html)
            assert name in {"href", "title", "class", "rel", "start"}, (tag, name, html)
        if tag == "a" and "href" in attrs:
            assert allowed_url(str(attrs["href"])), html
            assert attrs["rel"] == LINK_REL, html
    return elements


# --- CommonMark basics ------------------------------------------------------------------------------


def test_paragraphs_emphasis_and_lists() -> None:
    html = render_markdown("Hello *world* and **bold**\n\n- one\n- two\n\n1. first\n2. second")
    assert "<p>Hello <em>world</em> and <strong>bold</strong></p>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert_safe(html)


def test_headings_quotes_rules_and_inline_code() -> None:
    html = render_markdown("# Title\n\n## Sub\n\n> quoted\n\n---\n\nuse `x < y` here")
    assert "<h1>Title</h1>" in html and "<h2>Sub</h2>" in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<hr>" in html
    assert "<code>x &lt; y</code>" in html
    assert_safe(html)


def test_single_newlines_are_line_breaks() -> None:
    assert render_markdown("roses\nviolets") == "<p>roses<br>\nviolets</p>\n"


def test_ordered_list_keeps_its_start() -> None:
    assert '<ol start="3">' in render_markdown("3. three\n4. four")


def test_tables_align_by_class_not_style() -> None:
    html = render_markdown("| a | b | c |\n|:--|--:|:-:|\n| 1 | 2 | 3 |")
    elements = assert_safe(html)
    assert [attrs.get("class") for attrs in elements.named("th")] == ["align-left", "align-right", "align-center"]
    assert [attrs.get("class") for attrs in elements.named("td")] == ["align-left", "align-right", "align-center"]
    assert "<thead>" in html and "<tbody>" in html


def test_strikethrough() -> None:
    assert "<s>gone</s>" in render_markdown("~~gone~~")


def test_fenced_code_is_highlighted_with_classes_only() -> None:
    html = render_markdown('```python\ndef f(x):\n    return "<b>"\n```')
    elements = assert_safe(html)
    assert '<span class="code-lang">python</span>' in html
    assert '<span class="k">def</span>' in html
    assert "&lt;b&gt;" in html
    assert all(attrs.get("class") for attrs in elements.named("span"))
    assert "".join(elements.text).count('def f(x):\n    return "<b>"\n') == 1  # the code, exactly, for copying


def test_unknown_language_and_indented_code_are_plain_code_blocks() -> None:
    html = render_markdown("```no-such-lang\n<i>x</i>\n```\n\n    indented <b>")
    assert '<span class="code-lang">no-such-lang</span>' in html
    assert "<code>&lt;i&gt;x&lt;/i&gt;\n</code>" in html
    assert "<code>indented &lt;b&gt;\n</code>" in html
    assert_safe(html)


def test_hostile_fence_info_string_is_not_a_class_or_attribute() -> None:
    html = render_markdown('```"><script>alert(1)</script> onload=x\ncode\n```')
    elements = assert_safe(html)
    assert "code-lang" not in html  # not a plausible language name: no label at all
    assert elements.named("script") == []


def test_unterminated_fence_runs_to_the_end_as_code() -> None:
    html = render_markdown("before\n\n```js\nlet a = 1;\n# not a heading")
    elements = assert_safe(html)
    assert "<h1>" not in html
    assert "let a = 1;\n# not a heading" in "".join(elements.text)


# --- links and images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "[x](http://example.com/a?b=1&c=2)",
        "[x](https://example.com)",
        "[x](mailto:someone@example.com)",
        "<https://example.com>",
        "[x][ref]\n\n[ref]: https://example.com 'Title'",
        "[x](HTTPS://EXAMPLE.COM)",
    ],
)
def test_allowed_links_get_nofollow_noopener_ugc(source: str) -> None:
    elements = assert_safe(render_markdown(source))
    links = elements.named("a")
    assert len(links) == 1
    assert links[0]["rel"] == "nofollow noopener ugc"
    assert str(links[0]["href"]).lower().startswith(("http://", "https://", "mailto:"))


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x]( javascript:alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x](jav&#x09;ascript:alert(1))",
        "[x](jav&#9;ascript:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](javascript&colon;alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](vbscript:msgbox(1))",
        "[x](VBScript:msgbox(1))",
        "[x](file:///etc/passwd)",
        "[x](/history/delete-all/)",
        "[x](//evil.example/)",
        "[x](#top)",
        "<javascript:alert(1)>",
        "[x][ref]\n\n[ref]: javascript:alert(1)",
        "[x][ref]\n\n[ref]: <data:text/html,<script>alert(1)</script>>",
    ],
)
def test_other_links_stay_text(source: str) -> None:
    html = render_markdown(source)
    elements = assert_safe(html)
    assert elements.named("a") == [], html


def test_link_title_cannot_inject_attributes() -> None:
    html = render_markdown('[x](https://example.com "a\\" onmouseover=\\"alert(1)")')
    elements = assert_safe(html)
    (link,) = elements.named("a")
    assert link["title"] == 'a" onmouseover="alert(1)'
    assert set(link) == {"href", "title", "rel"}


def test_images_become_links_and_never_load() -> None:
    html = render_markdown('![a cat](https://images.example/cat.png "Cat")')
    elements = assert_safe(html)
    (link,) = elements.named("a")
    assert link["href"] == "https://images.example/cat.png"
    assert link["class"] == "image-link"
    assert "".join(elements.text) == "a cat\n"


@pytest.mark.parametrize(
    "source",
    ["![x](javascript:alert(1))", "![x](data:image/png;base64,iVBORw0KGgo=)", "![x](/static/favicon.svg)"],
)
def test_images_with_other_urls_are_plain_text(source: str) -> None:
    html = render_markdown(source)
    assert_safe(html)
    assert "<a" not in html


# --- raw HTML and other hostile input -------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "<script>window.__xss=1</script>",
        "<img src=x onerror=alert(1)>",
        '<svg onload="alert(1)"><circle r=1 /></svg>',
        '<iframe src="https://evil.example"></iframe>',
        '<p style="position:fixed;inset:0">cover</p>',
        '<a href="javascript:alert(1)">x</a>',
        "<div>\n<script>alert(1)</script>\n</div>",
        "<!-- comment --><style>body{display:none}</style>",
        '<details open ontoggle="alert(1)">x</details>',
        '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    ],
)
def test_raw_html_is_shown_as_text(payload: str) -> None:
    html = render_markdown(payload)
    elements = assert_safe(html)
    assert {tag for tag, _ in elements.tags} <= {"p", "br"}
    assert payload.split("\n")[0] in "".join(elements.text)  # visible, literally


def test_raw_html_inside_markdown_constructs_is_text_too() -> None:
    source = "# <img src=x onerror=alert(1)>\n\n- <script>x</script>\n\n| <b>a</b> |\n|---|\n| <i>b</i> |"
    html = render_markdown(source)
    elements = assert_safe(html)
    assert elements.named("b") == [] and elements.named("i") == [] and elements.named("script") == []
    assert "<h1>&lt;img src=x onerror=alert(1)&gt;</h1>" in html


def test_nul_and_lone_surrogates_do_not_break_rendering() -> None:
    html = render_markdown("a\x00b \ud800 c")
    assert_safe(html)
    assert html.startswith("<p>a")


def test_empty_answer_renders_nothing() -> None:
    assert render_markdown("") == ""


# --- size, speed, cache -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    ["[", "*a **b ", "> ", "- ", "`", "<", "&#x41;", "[x](http://a.b) ", "| a | b |\n", "_a ", "a\n"],
)
def test_100_kb_of_hostile_markdown_renders_fast_and_bounded(unit: str) -> None:
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    _CACHE.clear()
    started = time.perf_counter()
    html = render_markdown(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"{unit!r}: {elapsed:.1f} s"
    assert len(html) < 8 * len(text)
    assert_safe(html)


def test_over_the_limit_is_escaped_plain_text() -> None:
    text = "# not parsed <script>x</script>\n" + "a" * MAX_RENDER_CHARS
    html = render_markdown(text)
    assert html.startswith("<p># not parsed &lt;script&gt;x&lt;/script&gt;<br>")
    assert_safe(html)


def test_same_text_is_rendered_once() -> None:
    _CACHE.clear()
    first = render_markdown("cached *answer*")
    assert len(_CACHE) == 1
    assert render_markdown("cached *answer*") is first
    assert len(_CACHE) == 1


def test_cache_stays_small() -> None:
    _CACHE.clear()
    for number in range(_CACHE.size + 50):
        render_markdown(f"answer {number}")
    assert len(_CACHE) == _CACHE.size


# --- the template filter and the stylesheet -------------------------------------------------------


def test_answer_html_filter_renders_and_marks_safe() -> None:
    html = Template("{% load answers %}{{ text|answer_html }}").render(Context({"text": "**hi** <b>x</b>"}))
    assert html == "<p><strong>hi</strong> &lt;b&gt;x&lt;/b&gt;</p>\n"
    assert Template("{% load answers %}{{ text|answer_html }}").render(Context({"text": None})) == ""


def test_committed_code_stylesheet_is_the_generated_one() -> None:
    committed = (ROOT / "static" / "app" / "code.css").read_text(encoding="utf-8")
    assert committed == code_style.stylesheet(), "run: python -m app.presenters.code_style > static/app/code.css"


def test_every_code_colour_is_readable_on_its_background() -> None:
    for style_name, background, text in (code_style.LIGHT, code_style.DARK):
        assert code_style.contrast(text, background) >= 4.5, style_name
    css = code_style.stylesheet()
    light, _, dark = css.partition("@media (prefers-color-scheme: dark)")
    for block, (_, background, _) in ((light, code_style.LIGHT), (dark, code_style.DARK)):
        colours = [part.split("color: ")[1][:7] for part in block.split(";") if " color: #" in part]
        assert colours
        for colour in colours:
            assert code_style.contrast(colour, background) >= 4.5, (colour, background)
