"""The word diff of two answers: tokens keep every character, segments rebuild both texts, cost stays bounded."""

from __future__ import annotations

import random

import pytest

from app.domain.diff import DiffResult, tokenize, word_diff


def rebuilt(result: DiffResult) -> tuple[str, str]:
    first = "".join(segment.text for segment in result.side("delete"))
    second = "".join(segment.text for segment in result.side("insert"))
    return first, second


def kinds(result: DiffResult) -> list[tuple[str, str]]:
    return [(segment.kind, segment.text) for segment in result.segments]


def test_tokens_keep_every_character_including_whitespace_and_punctuation() -> None:
    text = "  Hello,  world!\n\tNew line…  "
    assert "".join(tokenize(text)) == text
    assert tokenize("Paris is big.") == ["Paris ", "is ", "big", "."]


def test_one_changed_word_is_one_removal_and_one_addition() -> None:
    result = word_diff("The capital of France is Paris.", "The capital of France is Lyon.")
    assert kinds(result) == [
        ("equal", "The capital of France is "),
        ("delete", "Paris"),
        ("insert", "Lyon"),
        ("equal", "."),
    ]
    assert rebuilt(result) == ("The capital of France is Paris.", "The capital of France is Lyon.")
    assert 0 < result.percent_same < 100


def test_a_changed_line_break_is_a_change() -> None:
    result = word_diff("one two", "one\ntwo")
    assert not result.identical
    assert rebuilt(result) == ("one two", "one\ntwo")


def test_identical_texts_are_all_equal_and_100_percent() -> None:
    result = word_diff("Same answer.\nTwice.", "Same answer.\nTwice.")
    assert result.identical
    assert kinds(result) == [("equal", "Same answer.\nTwice.")]
    assert result.percent_same == 100


def test_empty_texts() -> None:
    both = word_diff("", "")
    assert both.segments == () and both.identical and both.percent_same == 100
    added = word_diff("", "new text")
    assert kinds(added) == [("insert", "new text")] and added.percent_same == 0
    removed = word_diff("old text", "")
    assert kinds(removed) == [("delete", "old text")] and removed.percent_same == 0


def test_unicode_words_accents_emoji_and_scripts() -> None:
    first, second = "Café crème 🙂 日本語です", "Café noir 🙂 日本語です"
    result = word_diff(first, second)
    assert rebuilt(result) == (first, second)
    assert ("delete", "crème ") in kinds(result) and ("insert", "noir ") in kinds(result)
    combining = word_diff("e\u0301te\u0301", "e\u0301te")  # decomposed accents survive as they are
    assert rebuilt(combining) == ("e\u0301te\u0301", "e\u0301te")


def test_percent_is_rounded_down_and_never_100_unless_identical() -> None:
    long = "word " * 500
    result = word_diff(long + "a", long + "b")
    assert result.percent_same == 99


def test_moved_sentences_are_followed() -> None:
    first = "Alpha is first. Beta comes next. Gamma ends it."
    second = "Beta comes next. Alpha is first. Gamma ends it."
    result = word_diff(first, second)
    assert rebuilt(result) == (first, second)
    assert result.same_chars >= len("Alpha is first") + len(". Gamma ends it.")  # one sentence and the end


def test_hostile_html_is_kept_as_plain_text_in_the_segments() -> None:
    """The domain never builds markup: the page escapes each segment (app/tests/views/test_compare.py)."""
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    result = word_diff("safe", hostile)
    assert rebuilt(result) == ("safe", hostile)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(None, None, id="unrelated-prose"),
        pytest.param("a " * 50_000, "a b " * 25_000, id="one-word-repeated"),
        pytest.param("Hello there. " * 7_700, "Hello there! " * 7_700, id="one-sentence-repeated"),
        pytest.param("x" * 100_000, "y" * 100_000, id="one-long-word"),
    ],
)
def test_100_kb_answers_diff_in_bounded_work(first: str | None, second: str | None) -> None:
    """Not a timing assertion: these pairs took minutes with one plain SequenceMatcher; here they complete."""
    if first is None or second is None:
        words = [
            "the",
            "of",
            "and",
            "a",
            "to",
            "in",
            "is",
            "it",
            "that",
            "was",
            "for",
            "on",
            "are",
            "as",
            "with",
            "his",
            "they",
            "at",
            "be",
            "this",
            "from",
        ]
        rng = random.Random(7)
        first = "".join(rng.choice(words) + rng.choice([" ", " ", ", ", ".\n"]) for _ in range(25_000))
        second = "".join(rng.choice(words) + rng.choice([" ", " ", ", ", ".\n"]) for _ in range(25_000))
    assert len(first) >= 90_000 and len(second) >= 90_000
    result = word_diff(first, second)
    assert rebuilt(result) == (first, second)
    assert 0 <= result.percent_same < 100


def test_a_small_change_in_a_100_kb_answer_stays_small() -> None:
    rng = random.Random(3)
    words = [f"w{n}" for n in range(300)]
    first = " ".join(rng.choice(words) for _ in range(20_000))
    second = first[:50_000] + " inserted words " + first[50_000:]
    result = word_diff(first, second)
    assert rebuilt(result) == (first, second)
    changed = [segment for segment in result.segments if not segment.equal]
    assert sum(len(segment.text) for segment in changed) < 100
    assert result.percent_same == 99
