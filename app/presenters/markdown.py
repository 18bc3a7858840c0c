"""An answer's markdown as safe HTML: the one renderer behind ``{{ text|answer_html }}``.

Model answers (and imported ones) are untrusted text. They are parsed by markdown-it-py (CommonMark
plus tables and strikethrough; raw HTML is *not* interpreted: ``<script>`` stays visible text), then
the HTML is sanitised by nh3 against an allowlist of tags, attributes and classes, so even a bug in
the markdown step cannot smuggle markup through. What the answer may contain:

* links only to ``http:``, ``https:`` and ``mailto:`` (anything else, relative URLs included, stays
  text), each with ``rel="nofollow noopener ugc"``;
* no images: ``![alt](url)`` becomes a link "alt" to the url, so nothing remote is ever loaded;
* fenced and indented code highlighted by Pygments with CSS classes only (``static/app/code.css``),
  never ``style=``: the Content-Security-Policy forbids inline styles;
* table cell alignment as ``align-left``/``-center``/``-right`` classes, for the same reason.

Pages show the same answers over and over (history, detail, reloads), so results are kept in a small
LRU keyed by a hash of the text.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener ugc"
MAX_RENDER_CHARS = 100_000  # beyond this an answer is shown as escaped plain text, not parsed
MAX_HIGHLIGHT_CHARS = 20_000  # longer code blocks are shown without colours
MAX_LANGUAGE_CHARS = 32
CACHE_SIZE = 256

_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
_LANGUAGE = re.compile(r"^[\w+#.\-]+$")
_ALIGN = re.compile(r"text-align:\s*(left|center|right)")

PYGMENTS_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
CODE_CLASSES = frozenset({"code-block", "code-head", "code-lang", "highlight"})
ALIGN_CLASSES = frozenset({"align-left", "align-center", "align-right"})

TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li",
        "pre", "code", "span", "div", "em", "strong", "del", "s", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "ol": {"start"}}
CLASSES: dict[str, set[str]] = {
    "span": set(PYGMENTS_CLASSES | {"code-lang"}),
    "div": set(CODE_CLASSES),
    "pre": {"highlight"},
    "a": {"image-link"},
    "th": set(ALIGN_CLASSES),
    "td": set(ALIGN_CLASSES),
}


def allowed_url(url: str) -> bool:
    """Only absolute http(s) and mailto URLs; relative ones and every other scheme are refused."""
    match = _SCHEME.match(url.strip())
    return match is not None and match.group(1).lower() in ALLOWED_SCHEMES


def render_markdown(text: str) -> str:
    """Sanitised HTML for an answer's markdown (cached by the text's hash)."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot cross into nh3
    key = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    html = _sanitise(_to_html(text))
    _CACHE.put(key, html)
    return html


def highlight_code(code: str, language: str) -> str:
    """One code block: a head with its language (the copy button goes there) and the highlighted code."""
    language = language if len(language) <= MAX_LANGUAGE_CHARS and _LANGUAGE.match(language) else ""
    lexer = _lexer(language) if len(code) <= MAX_HIGHLIGHT_CHARS else None
    body = highlight(code, lexer, _FORMATTER) if lexer is not None else escapeHtml(code)
    label = f'<span class="code-lang">{escapeHtml(language)}</span>' if language else ""
    return (
        f'<div class="code-block"><div class="code-head">{label}</div>'
        f'<pre class="highlight"><code>{body}</code></pre></div>\n'
    )


# --- markdown-it: the parser and the rules that differ from its defaults --------------------------


def _lexer(language: str) -> Lexer | None:
    if not language:
        return None
    try:
        return get_lexer_by_name(language, stripnl=False, stripall=False)
    except ClassNotFound:
        return None


def _fence(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    return highlight_code(token.content, info.split(maxsplit=1)[0] if info else "")


def _code_block(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    return highlight_code(tokens[idx].content, "")


def _image(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """``![alt](url)`` as a link to the image, never an ``<img>``: nothing remote loads."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    if not allowed_url(src):
        return escapeHtml(alt)
    title = token.attrGet("title")
    title_attr = f' title="{escapeHtml(str(title))}"' if title else ""
    return f'<a class="image-link" href="{escapeHtml(src)}"{title_attr}>{escapeHtml(alt)}</a>'


def _cell_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """Table alignment as a class: markdown-it writes ``style="text-align:…"``, which the CSP forbids."""
    token = tokens[idx]
    style = token.attrGet("style")
    if style is not None:
        token.attrs.pop("style", None)
        match = _ALIGN.search(str(style))
        if match:
            token.attrSet("class", f"align-{match.group(1)}")
    return renderer.renderToken(tokens, idx, options, env)


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "xhtmlOut": False, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = allowed_url  # type: ignore[method-assign]
    for name, rule in (
        ("fence", _fence),
        ("code_block", _code_block),
        ("image", _image),
        ("th_open", _cell_open),
        ("td_open", _cell_open),
    ):
        md.add_render_rule(name, rule)
    return md


def _to_html(text: str) -> str:
    if len(text) > MAX_RENDER_CHARS:
        parts = (escapeHtml(part).replace("\n", "<br>\n") for part in text.split("\n\n") if part.strip())
        return "".join(f"<p>{part}</p>\n" for part in parts)
    return str(_PARSER.render(text))


def _sanitise(html: str) -> str:
    return str(_CLEANER.clean(html))


class _Lru:
    """A small thread-safe LRU of rendered answers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(TAGS),
        attributes=ATTRIBUTES,
        allowed_classes=CLASSES,
        url_schemes=set(ALLOWED_SCHEMES),
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
        clean_content_tags={"script", "style"},
    )


_FORMATTER = HtmlFormatter(nowrap=True)
_PARSER = _build_parser()
_CLEANER = _cleaner()
_CACHE = _Lru(CACHE_SIZE)
