"""Template syntax: placeholders, variables, and every broken form named with its place."""

from __future__ import annotations

import pytest

from app.domain.templates import check_body, check_name, fill, parse_body, shown, template_variables
from app.errors import (
    TEMPLATE_BODY_EMPTY,
    TEMPLATE_BODY_TOO_LONG,
    TEMPLATE_BODY_UNSTORABLE,
    TEMPLATE_NAME_INVALID,
    InvalidTemplate,
)


def test_variables_in_order_each_once_with_optional_spaces() -> None:
    body = "Summarise {{topic}} for {{ audience }} in {{\tlength\t}} words; again: {{topic}}"
    assert template_variables(body) == ("topic", "audience", "length")
    assert [(p.start, p.end) for p in parse_body("a {{x}} b")] == [(2, 7)]


def test_plain_text_and_single_braces_are_fine() -> None:
    assert template_variables('JSON {"a": 1} and a } or { alone') == ()
    assert template_variables("{{x}}}") == ("x",)  # a placeholder then one plain brace


@pytest.mark.parametrize(
    ("body", "start", "where"),
    [
        ("Hello {{name", "is never closed", "line 1, column 7"),
        ("a\nbc {{", "is never closed", "line 2, column 4"),
        ("{{a}} then }} here", "closes nothing", "line 1, column 12"),
        ("stray }}", "closes nothing", "line 1, column 7"),
        ("empty {{}}", "has no variable name", "line 1, column 7"),
        ("blank {{   }}", "has no variable name", "line 1, column 7"),
        ("nested {{ {{x}} }}", "A brace inside", "line 1, column 8"),
        ("triple {{{x}}}", "A brace inside", "line 1, column 8"),
        ("brace {{a}b}}", "A brace inside", "line 1, column 7"),
        ("{{1st}}", "is not a variable name", "line 1, column 1"),
        ("{{a-b}}", "is not a variable name", "line 1, column 1"),
        ("{{a b}}", "is not a variable name", "line 1, column 1"),
        ("{{é}}", "is not a variable name", "line 1, column 1"),
        ("{{<script>}}", "is not a variable name", "line 1, column 1"),
        ("{{\nx\n}}", "is not a variable name", "line 1, column 1"),
        ("{{" + "a" * 65 + "}}", "is not a variable name", "line 1, column 1"),
    ],
)
def test_broken_syntax_names_the_place(body: str, start: str, where: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check_body(body, max_chars=4000)
    assert start in caught.value.message
    assert where in caught.value.message
    assert caught.value.status == 422
    assert caught.value.fields() == {"body": caught.value.message}


def test_the_message_quotes_a_short_one_line_snippet() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_body("x " * 10 + "{{oops\nsecond line that is long enough to be cut")
    assert "“{{oops⏎second line that …”" in caught.value.message


@pytest.mark.parametrize("body", ["", "   \n\t"])
def test_empty_body(body: str) -> None:
    with pytest.raises(InvalidTemplate, match=TEMPLATE_BODY_EMPTY):
        check_body(body, max_chars=10)


def test_too_long_body() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check_body("x" * 11, max_chars=10)
    assert caught.value.message == TEMPLATE_BODY_TOO_LONG.format(limit=10)
    assert check_body("x" * 10, max_chars=10) == "x" * 10


@pytest.mark.parametrize("body", ["a\x00b", "a\ud800b", "{{x}}\udfff"])
def test_unstorable_body(body: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check_body(body, max_chars=100)
    assert caught.value.message == TEMPLATE_BODY_UNSTORABLE


def test_body_is_kept_as_typed() -> None:
    assert check_body("  <b>{{ x }}</b>\n", max_chars=100) == "  <b>{{ x }}</b>\n"


@pytest.mark.parametrize("name", ["a", "summary", "bug-report", "x_1", "0", "a" * 40, " padded "])
def test_good_names(name: str) -> None:
    assert check_name(name) == name.strip()


@pytest.mark.parametrize(
    "name", ["", " ", "-a", "_a", "Greet", "a b", "a/b", "../x", "<b>", "é", "a" * 41, "a\x00", "a\ud800", "a.b"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check_name(name)
    assert caught.value.message == TEMPLATE_NAME_INVALID
    assert caught.value.fields() == {"name": TEMPLATE_NAME_INVALID}


def test_fill_replaces_known_variables_only() -> None:
    assert fill("Hi {{ name }}, {{x}}!", {"name": "Ada"}) == "Hi Ada, {{x}}!"


def test_shown_never_carries_unstorable_text() -> None:
    assert shown("a\ud800\x00b") == "a\ufffd\ufffdb"
