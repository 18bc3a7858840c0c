"""The search box's query language (pure): fields, phrases, exclusions and junk that must stay harmless."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.search import MAX_QUERY_WORDS, WORD_RE
from app.services.search.query import (
    NOTE_BAD_DATE,
    NOTE_BAD_STATUS,
    NOTE_UNBALANCED_QUOTE,
    NOTE_UNKNOWN_FIELD,
    ParsedQuery,
    parse,
)


def test_words_phrases_exclusions_and_fields() -> None:
    query = parse(
        'capital "south of France" -paris -"new york" model:tiny status:OK tag:Geo after:2026-01-01 before:2026-02-01'
    )
    assert query.words == ("capital",)
    assert query.phrases == (("south", "of", "france"),)
    assert query.excluded == ("paris",)
    assert query.excluded_phrases == (("new", "york"),)
    assert (query.model, query.status, query.tags) == ("tiny", "ok", ("geo",))
    assert query.after == datetime(2026, 1, 1, tzinfo=UTC)
    assert query.before == datetime(2026, 2, 1, tzinfo=UTC)
    assert query.notes == ()


def test_last_word_being_typed_is_a_prefix() -> None:
    assert parse("capital fra") == ParsedQuery(words=("capital",), prefix="fra")
    assert parse("capital fra ") == ParsedQuery(words=("capital", "fra"))


def test_quoted_field_value_keeps_spaces() -> None:
    assert parse('model:"my model" hello ').model == "my model"


def test_unbalanced_quote_reads_as_words_with_a_note() -> None:
    query = parse('"south of france')
    assert query.words == ("south", "of") and query.prefix == "france"
    assert query.notes == (NOTE_UNBALANCED_QUOTE,)


def test_unknown_field_reads_as_words_with_a_note() -> None:
    query = parse("colour:red ")
    assert query.words == ("colour", "red")
    assert query.notes == (NOTE_UNKNOWN_FIELD.format(name="colour"),)


def test_bare_dash_is_nothing() -> None:
    assert parse(" - ").is_empty
    assert parse("-").is_empty


def test_operators_and_regex_characters_are_plain_words() -> None:
    query = parse('{"$ne": 1} .* (a|b) ^x$ ')
    assert query.words == ("ne", "1", "a", "b", "x")
    assert query.model == ""


def test_bad_date_and_status_are_ignored_with_notes() -> None:
    query = parse("before:2026-13-01 status:weird x")
    assert (query.before, query.status) == (None, "")
    assert query.notes == (
        NOTE_BAD_DATE.format(name="before", value="2026-13-01"),
        NOTE_BAD_STATUS.format(value="weird"),
    )


def test_very_long_query_is_capped_in_words() -> None:
    query = parse("word " * 5000)
    assert query.words == ("word",)
    query = parse(" ".join(f"w{n}" for n in range(100)))
    assert len(query.required_words) + bool(query.prefix) <= MAX_QUERY_WORDS


def test_corrections_replace_words_and_prefix() -> None:
    query = parse('captial "of frnace" par').with_corrections({"captial": "capital", "frnace": "france", "par": "pa"})
    assert query.display() == 'capital "of france" pa'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_to_literal_words(text: str) -> None:
    query = parse(text)
    for word in (*query.words, *query.excluded, query.prefix, *(w for p in query.phrases for w in p)):
        assert word == "" or WORD_RE.fullmatch(word)
    for value in (query.model, query.status, *query.tags):
        assert isinstance(value, str)
    assert query.status in ("", "ok", "error", "cancelled")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(['"', "-", ":", "model:", "tag:", "$ne", "$gt", ".*", "a", " ", "before:", "\\"]), max_size=40
    )
)
def test_junk_made_of_syntax_never_raises(parts: list[str]) -> None:
    query = parse("".join(parts))
    assert "$" not in "".join(query.words)
