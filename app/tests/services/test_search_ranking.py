"""Relevance order, exclusions, phrases, one-edit typos and rank fusion (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services.search.query import parse
from app.services.search.ranking import reciprocal_rank_fusion, relevance
from app.services.search.vocabulary import one_edit_apart

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def score(query: str, prompt: str, output: str = "", *, age: int = 0):  # type: ignore[no-untyped-def]
    return relevance(parse(query), prompt=prompt, output=output, created_at=NOW - timedelta(minutes=age))


def test_every_word_must_appear_somewhere() -> None:
    assert score("capital france ", "capital of spain") is None
    assert score("capital france ", "capital", "france") is not None


def test_prompt_match_ranks_above_answer_match() -> None:
    in_prompt = score("paris ", "tell me about paris", "a city", age=10)
    in_answer = score("paris ", "tell me about a city", "paris is one", age=0)
    assert in_prompt is not None and in_answer is not None
    assert in_prompt.key() > in_answer.key()


def test_closer_words_rank_higher() -> None:
    close = score("red car ", "a red car in the street", age=5)
    far = score("red car ", "red is a colour and a car is a vehicle", age=0)
    assert close is not None and far is not None and close.key() > far.key()


def test_equal_matches_fall_back_to_newest() -> None:
    older = score("tea ", "green tea", age=5)
    newer = score("tea ", "black tea", age=1)
    assert older is not None and newer is not None and newer.key() > older.key()


def test_phrase_must_be_consecutive() -> None:
    assert score('"new york"', "new york city") is not None
    assert score('"new york"', "york is new") is None


def test_excluded_word_and_phrase_drop_the_match() -> None:
    assert score("city -paris ", "city of paris") is None
    assert score('city -"new york"', "a city", "in new york") is None
    assert score('city -"new york"', "a new city in york") is not None


def test_prefix_matches_the_start_of_a_word() -> None:
    assert score("capital fra", "capital of france") is not None
    assert score("capital fra", "capital of spain") is None


def test_one_edit_apart_covers_insert_delete_replace_and_swap() -> None:
    assert one_edit_apart("captial", "capital")  # swap
    assert one_edit_apart("capitl", "capital")  # insert
    assert one_edit_apart("capittal", "capital")  # delete
    assert one_edit_apart("capitel", "capital")  # replace
    assert not one_edit_apart("capital", "capital")
    assert not one_edit_apart("cptal", "capital")


def test_rank_fusion_rewards_items_in_both_lists() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d"]])
    assert fused[0] == "c"
    assert set(fused) == {"a", "b", "c", "d"}


def test_rank_fusion_ties_keep_the_first_list_order() -> None:
    assert reciprocal_rank_fusion([["x"], ["y"]]) == ["x", "y"]


def test_rank_fusion_weights_a_ranking_down() -> None:
    assert reciprocal_rank_fusion([["x"], ["y"]], weights=(0.5, 1.0)) == ["y", "x"]
