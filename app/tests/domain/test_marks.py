"""Tags: normalised, checked, limited; stars and tags as search keys."""

from __future__ import annotations

import pytest

from app.domain.interaction import Interaction
from app.domain.marks import (
    MAX_TAGS,
    STARRED_KEY,
    marks_from_record,
    normalize_tags,
    parse_tags,
    with_marks,
)
from app.errors import TAGS_TOO_MANY, InvalidTags


def test_tags_are_trimmed_casefolded_deduplicated_in_order() -> None:
    assert parse_tags("  Geo, travel  GEO,,todo\tStraße ") == ["geo", "travel", "todo", "strasse"]
    assert parse_tags("") == []
    assert parse_tags("日本語 naïve a-b_c") == ["日本語", "naïve", "a-b_c"]


@pytest.mark.parametrize("bad", ["#geo", "a.b", "<b>", "x" * 33, "a\x00", "a\ud800", "$ne", "a/b", "é!"])
def test_invalid_tags_are_named(bad: str) -> None:
    with pytest.raises(InvalidTags) as caught:
        normalize_tags([bad])
    assert caught.value.status == 422
    assert "is not a valid tag" in caught.value.message
    assert "\ud800" not in caught.value.message and "\x00" not in caught.value.message


def test_at_most_twenty_tags() -> None:
    assert len(parse_tags(" ".join(f"t{n}" for n in range(MAX_TAGS)))) == MAX_TAGS
    with pytest.raises(InvalidTags, match=TAGS_TOO_MANY.format(limit=MAX_TAGS)):
        parse_tags(" ".join(f"t{n}" for n in range(MAX_TAGS + 1)))


def test_huge_tag_text_is_refused_before_splitting() -> None:
    with pytest.raises(InvalidTags, match="too long"):
        parse_tags("a " * 5000)


def test_mark_keys_replace_only_mark_keys() -> None:
    keys = ["m:tiny", "p:cap", "g:old", STARRED_KEY]
    assert with_marks(keys, tags=["geo"], starred=False) == ["g:geo", "m:tiny", "p:cap"]
    assert with_marks(keys, tags=[], starred=True) == [STARRED_KEY, "m:tiny", "p:cap"]


def test_an_interaction_writes_its_marks_into_its_search_keys() -> None:
    item = Interaction(prompt="Capital?", output="Paris", model="m", task="t", session_id="s", tags=["geo"])
    item.starred = True
    keys = item.search_fields()["search_keys"]
    assert "g:geo" in keys and STARRED_KEY in keys and "m:m" in keys


def test_imported_marks() -> None:
    assert marks_from_record({}) == (False, [])
    assert marks_from_record({"starred": True, "tags": ["Geo"]}) == (True, ["geo"])
    for bad in ({"starred": "yes"}, {"tags": "geo"}, {"tags": [1]}, {"tags": ["a b"]}):
        with pytest.raises(InvalidTags):
            marks_from_record(bad)


def test_history_filter_rides_on_the_tag_key_and_checks_every_mark() -> None:
    from app.domain.filters import HistoryFilter

    both = HistoryFilter(tags=("geo", "todo"), starred=True)
    assert both.driving_term() == ("search_keys", "g:geo")
    assert HistoryFilter(starred=True).driving_term() == ("search_keys", STARRED_KEY)
    assert both.narrows_beyond_owner and not HistoryFilter(starred=True).narrows_beyond_owner
    assert both.accepts({"starred": True, "tags": ["todo", "geo", "x"]})
    assert not both.accepts({"starred": False, "tags": ["todo", "geo"]})
    assert not both.accepts({"starred": True, "tags": ["geo"]})
