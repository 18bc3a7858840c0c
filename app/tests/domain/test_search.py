"""Tokenization, query parsing and highlighted snippets (pure functions, no store)."""

from __future__ import annotations

from app.domain.search import (
    MAX_TOKEN_CHARS,
    SearchQuery,
    Segment,
    document_keys,
    document_tokens,
    highlight,
    normalize,
    parse_query,
    tokenize,
)


def test_tokenize_lowercases_and_strips_accents() -> None:
    assert tokenize("Crème BRÛLÉE à Zürich") == ["creme", "brulee", "a", "zurich"]


def test_tokenize_splits_on_punctuation_and_underscores() -> None:
    assert tokenize("hello,world! foo_bar-baz (x+y)=z's") == ["hello", "world", "foo", "bar", "baz", "x", "y", "z", "s"]


def test_tokenize_keeps_digits_and_non_latin_letters() -> None:
    assert tokenize("GPT-4o 東京 Ελλάδα") == ["gpt", "4o", "東京", "ελλαδα"]


def test_normalize_folds_case_beyond_lower() -> None:
    assert normalize("Straße") == "strasse"


def test_tokens_are_capped_in_length() -> None:
    assert tokenize("a" * 100) == ["a" * MAX_TOKEN_CHARS]


def test_document_tokens_are_distinct_and_sorted_across_texts() -> None:
    assert document_tokens("The capital of France", "Paris is the capital.") == [
        "capital",
        "france",
        "is",
        "of",
        "paris",
        "the",
    ]


def test_document_keys_hold_three_letter_prefixes_and_facets() -> None:
    keys = document_keys(["capital", "of", "paris"], model="tiny", task="text-generation", status="ok")
    assert keys == ["m:tiny", "p:cap", "p:of", "p:par", "s:ok", "t:text-generation"]


def test_parse_query_makes_the_last_word_a_prefix() -> None:
    assert parse_query("Capital  FRA") == SearchQuery(words=("capital",), prefix="fra")


def test_parse_query_trailing_space_finishes_the_last_word() -> None:
    assert parse_query("capital france ") == SearchQuery(words=("capital", "france"), prefix="")


def test_parse_query_of_punctuation_only_is_empty() -> None:
    assert parse_query(" ?!* ").is_empty


def test_regex_characters_are_plain_text() -> None:
    query = parse_query(".* (a|b)")
    assert query == SearchQuery(words=("a",), prefix="b")


def test_all_words_must_match_and_last_is_prefix() -> None:
    query = parse_query("capital fra")
    assert query.matches_tokens(["the", "capital", "of", "france"]) is True
    assert query.matches_tokens(["the", "capital", "of", "spain"]) is False
    assert query.matches_tokens(["capitals", "france"]) is False


def test_accented_query_matches_unaccented_text() -> None:
    assert parse_query("Crème brû").matches_tokens(document_tokens("creme brulee")) is True


def test_driving_term_prefers_the_longest_whole_word() -> None:
    assert parse_query("of capital fr").driving_term() == ("search_tokens", "capital")


def test_driving_term_uses_the_three_letter_prefix_key() -> None:
    assert parse_query("capit").driving_term() == ("search_keys", "p:cap")


def test_short_prefix_has_no_driving_term() -> None:
    assert parse_query("ca").driving_term() is None


def test_highlight_marks_whole_words_and_the_prefix_keeping_original_case() -> None:
    segments = highlight("The Capital of France is Paris.", parse_query("capital fra"))
    assert segments == [
        Segment("The "),
        Segment("Capital", marked=True),
        Segment(" of "),
        Segment("France", marked=True),
        Segment(" is Paris."),
    ]


def test_highlight_marks_accented_words() -> None:
    segments = highlight("Une crème brûlée", parse_query("creme"))
    assert segments == [Segment("Une "), Segment("crème", marked=True), Segment(" brûlée")]


def test_highlight_keeps_html_as_text_for_the_template_to_escape() -> None:
    segments = highlight("<b>bold</b> text", parse_query("bold"))
    assert segments == [Segment("<b>"), Segment("bold", marked=True), Segment("</b> text")]


def test_highlight_cuts_a_snippet_around_the_first_match() -> None:
    text = "word " * 60 + "needle here " + "tail " * 60
    segments = highlight(text, parse_query("needle"), width=60)
    assert segments[0] == Segment("…")
    assert Segment("needle", marked=True) in segments
    assert segments[-1] == Segment("…")
    assert sum(len(s.text) for s in segments[1:-1]) <= 60


def test_highlight_without_query_is_the_start_of_the_text() -> None:
    assert highlight("short text", parse_query("")) == [Segment("short text")]
