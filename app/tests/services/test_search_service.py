"""Ranked, typo-tolerant, faceted and semantic history search against the real store (page + JSON API)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient, monitoring
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Interaction
from app.services import mongo_repo
from app.services.mongo_repo import InteractionRepository, get_repository
from app.services.search.atlas import reset_detection, search_supported
from app.services.search.indexer import embed_missing, get_worker
from app.services.search.semantic import get_embedder, reset_embedders
from app.services.search.service import NOTE_SEMANTIC_OFF
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("store_settings")
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def seed(client: Client, rows: list[tuple[str, str]], **fields: Any) -> list[Interaction]:
    client.get("/api/interactions")
    session_id = str(client.session[VISITOR_KEY])
    start = fields.pop("start", 0)
    items = [
        Interaction(
            prompt=prompt,
            output=output,
            model=fields.get("model", "tiny"),
            task="text-generation",
            status=fields.get("status", "ok"),
            session_id=session_id,
            created_at=BASE + timedelta(minutes=start + n),
        )
        for n, (prompt, output) in enumerate(rows)
    ]
    get_repository().import_batch(items)
    return items


def prompts(client: Client, query: str) -> list[str]:
    response = client.get("/api/interactions", {"q": query})
    assert response.status_code == 200
    return [item["prompt"] for item in response.json()["items"]]


@pytest.fixture
def hashing(settings: SettingsWrapper) -> Iterator[None]:
    """Semantic search with the model-free stand-in embedder."""
    settings.SEARCH_EMBEDDER = "hashing"
    reset_embedders()
    yield
    get_worker().wait_idle(10)
    reset_embedders()


def embed_all() -> None:
    embedder = get_embedder()
    assert embedder is not None
    get_worker().wait_idle(10)
    embed_missing(get_repository(), embedder)


def test_prompt_matches_rank_above_newer_answer_matches(client: Client) -> None:
    seed(client, [("about paris", "a city"), ("about a city", "paris"), ("another city", "paris again")])
    assert prompts(client, "paris ")[0] == "about paris"


def test_sort_newest_overrides_relevance(client: Client) -> None:
    seed(client, [("about paris", "a city"), ("about a city", "paris")])
    body = client.get("/api/interactions", {"q": "paris ", "sort": "newest"}).json()
    assert [item["prompt"] for item in body["items"]] == ["about a city", "about paris"]
    assert body["search"]["sort"] == "newest"


def test_phrase_and_exclusion(client: Client) -> None:
    seed(client, [("new york city", "x"), ("york is new", "x"), ("new york pizza", "cheese")])
    assert prompts(client, '"new york" -cheese') == ["new york city"]


def test_typo_is_corrected_from_the_owners_vocabulary(client: Client) -> None:
    seed(client, [("the capital of france", "paris"), ("a capitol building", "dc")])
    body = client.get("/api/interactions", {"q": "captial "}).json()
    assert [item["prompt"] for item in body["items"]] == ["the capital of france"]
    assert body["search"]["showing_results_for"] == "capital"


def test_page_says_showing_results_for(client: Client) -> None:
    seed(client, [("the capital of france", "paris")])
    response = client.get("/history/", {"q": "captial "})
    assert "Showing results for “<strong>capital</strong>”" in response.content.decode()


def test_no_correction_from_another_visitors_words(client: Client, other_client: Client) -> None:
    seed(other_client, [("the capital of france", "paris")])
    seed(client, [("something else", "entirely")])
    body = client.get("/api/interactions", {"q": "captial "}).json()
    assert body["items"] == [] and body["search"]["showing_results_for"] is None


def test_model_and_status_fields(client: Client) -> None:
    seed(client, [("hello a", "x")], model="alpha")
    seed(client, [("hello b", "x")], model="beta", status="error", start=5)
    assert prompts(client, "hello model:alpha") == ["hello a"]
    assert prompts(client, "hello status:error") == ["hello b"]


def test_tag_matches_nothing_until_tags_exist(client: Client) -> None:
    seed(client, [("hello", "x")])
    assert prompts(client, "hello tag:geo") == []


def test_before_and_after_dates(client: Client) -> None:
    seed(client, [("hello old", "x")])
    seed(client, [("hello new", "x")], start=3 * 24 * 60)
    assert prompts(client, "hello before:2026-03-02") == ["hello old"]
    assert prompts(client, "hello after:2026-03-02") == ["hello new"]


def test_facets_count_models_and_statuses_of_the_results(client: Client) -> None:
    seed(client, [("tea one", "x"), ("tea two", "x")], model="alpha")
    seed(client, [("tea three", "x"), ("coffee", "x")], model="beta", status="error", start=5)
    facets = client.get("/api/interactions", {"q": "tea "}).json()["search"]["facets"]
    assert facets["model"] == [{"value": "alpha", "count": 2}, {"value": "beta", "count": 1}]
    assert facets["status"] == [{"value": "ok", "count": 2}, {"value": "error", "count": 1}]
    assert facets["tag"] == []


def test_page_shows_facet_chips_that_narrow_the_search(client: Client) -> None:
    seed(client, [("tea one", "x")], model="alpha")
    html = client.get("/history/", {"q": "tea "}).content.decode()
    assert 'data-facet="model" data-value="alpha"' in html
    assert "?q=tea+&amp;model=alpha" in html


def test_ranked_results_page_with_an_offset_cursor(client: Client) -> None:
    seed(client, [(f"tea {n}", "x") for n in range(5)])
    first = client.get("/api/interactions", {"q": "tea ", "limit": "2"}).json()
    assert first["next_cursor"] == "r2"
    second = client.get("/api/interactions", {"q": "tea ", "limit": "2", "cursor": "r2"}).json()
    assert len(second["items"]) == 2
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


def test_semantic_mode_without_an_embedder_says_so(client: Client) -> None:
    seed(client, [("tea", "x")])
    body = client.get("/api/interactions", {"q": "tea ", "mode": "semantic"}).json()
    assert body["search"]["mode"] == "keyword"
    assert NOTE_SEMANTIC_OFF in body["search"]["notes"]


@pytest.mark.usefixtures("hashing")
def test_hybrid_finds_a_near_word_that_keywords_miss(client: Client) -> None:
    seed(client, [("photosynthesis in plants", "light"), ("the stock market", "shares")])
    embed_all()
    body = client.get("/api/interactions", {"q": "photosynthetic "}).json()
    assert body["search"]["mode"] == "hybrid"
    assert body["items"][0]["prompt"] == "photosynthesis in plants"


@pytest.mark.usefixtures("hashing")
def test_background_worker_embeds_what_is_stored(client: Client) -> None:
    seed(client, [("photosynthesis in plants", "light")])
    assert get_worker().wait_idle(10)
    doc = get_repository().collection.find_one({})
    assert doc is not None and doc["embedding_model"] == "hashing-384" and len(doc["embedding"]) == 2 + 384 * 4


@pytest.mark.usefixtures("hashing")
@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
def test_other_visitors_interactions_never_appear(client: Client, other_client: Client, mode: str) -> None:
    seed(other_client, [("secret photosynthesis notes", "private")])
    seed(client, [("my photosynthesis notes", "mine")], start=5)
    embed_all()
    for q in ("photosynthesis ", "secret ", "private ", "photosynthetic notes"):
        body = client.get("/api/interactions", {"q": q, "mode": mode}).json()
        assert all("secret" not in item["prompt"] for item in body["items"])
        page = client.get("/history/", {"q": q, "mode": mode}).content.decode()
        assert "secret photosynthesis" not in page


@pytest.mark.usefixtures("hashing")
def test_exports_leave_vectors_out(client: Client) -> None:
    seed(client, [("photosynthesis in plants", "light")])
    embed_all()
    response = client.get("/history/export.jsonl")
    body = b"".join(response.streaming_content).decode()
    assert "photosynthesis" in body and "embedding" not in body


def test_atlas_search_is_not_detected_on_the_local_store() -> None:
    reset_detection()
    assert search_supported(get_repository().collection) is False


class _Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


ALLOWED_OPERATORS = {
    "$in", "$gt", "$gte", "$lt", "$exists", "$ne", "$match", "$group", "$sum", "$unwind",
    "$eq", "$addToSet", "$each", "$set", "$max", "$inc", "$unset", "$limit", "$db", "$clusterTime",
    "$readPreference", "$lsid",
}  # fmt: skip


def _operators(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {key for key in value if isinstance(key, str) and key.startswith("$")}
        for inner in value.values():
            found |= _operators(inner)
        return found
    if isinstance(value, list | tuple):
        return set().union(*(_operators(inner) for inner in value)) if value else set()
    return set()


@pytest.fixture
def recorder(store_settings: SettingsWrapper) -> Iterator[_Recorder]:
    listener = _Recorder()
    base = get_repository()

    class Recording(InteractionRepository):
        def _connect(self) -> MongoClient[dict[str, Any]]:
            return MongoClient(base._uri, serverSelectionTimeoutMS=3000, tz_aware=True, event_listeners=[listener])

    mongo_repo._repository.replace(
        Recording(uri=base._uri, db_name=base._db_name, collection_name=base._collection_name, timeout_ms=3000)
    )
    yield listener


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            ['"', "-", "model:", "tag:", "status:", "before:", '{"$ne":1}', "$where", ".*", "(a|b)", "tea", " "]
        ),
        max_size=20,
    )
)
def test_bad_queries_never_fail_and_never_reach_mongodb_as_operators(
    client: Client, recorder: _Recorder, parts: list[str]
) -> None:
    text = "".join(parts)
    for mode in ("hybrid", "keyword"):
        response = client.get("/api/interactions", {"q": text, "mode": mode})
        assert response.status_code in (200, 400)
        assert client.get("/history/", {"q": text}).status_code in (200, 400)
    assert recorder.commands
    for command in recorder.commands:
        assert _operators(command) <= ALLOWED_OPERATORS, command


def test_ten_thousand_characters_is_a_clear_message(client: Client) -> None:
    response = client.get("/api/interactions", {"q": "x" * 10_000})
    assert response.status_code == 400
    assert response.json()["error"] == "The search is too long: at most 200 characters."
    page = client.get("/history/", {"q": "x" * 10_000}, headers={"HX-Request": "true"})
    assert page.status_code == 422
