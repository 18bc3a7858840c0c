"""The repository through real PyMongo against a MongoDB-protocol server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.interaction import Interaction, Scope
from app.errors import InteractionNotFound, InvalidCursor, StoreUnavailable
from app.services.mongo_documents import decode_cursor, encode_cursor
from app.services.mongo_repo import InteractionRepository, redact_uri

ALICE = Scope(session_id="alice")
BOB = Scope(session_id="bob")
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def make(scope: Scope, n: int, **overrides: object) -> Interaction:
    fields: dict[str, object] = {
        "prompt": f"prompt {n}",
        "output": f"answer {n}",
        "model": "tiny",
        "task": "text-generation",
        "session_id": scope.session_id,
        "created_at": BASE_TIME + timedelta(seconds=n),
    }
    fields.update(overrides)
    return Interaction(**fields)  # type: ignore[arg-type]


def test_insert_then_get_round_trips_every_field(repo: InteractionRepository) -> None:
    stored = make(
        ALICE, 1, params={"max_new_tokens": 8}, prompt_tokens=3, output_tokens=5, durations_ms={"generate_ms": 12.5}
    )
    repo.insert(stored)
    assert repo.get(stored.id, scope=ALICE) == stored


def test_documents_have_the_documented_fields(repo: InteractionRepository) -> None:
    stored = make(ALICE, 1)
    repo.insert(stored)
    doc = repo.collection.find_one({})
    assert doc is not None
    assert set(doc) >= {
        "_id",
        "prompt",
        "output",
        "model",
        "task",
        "params",
        "prompt_tokens",
        "output_tokens",
        "durations_ms",
        "session_id",
        "created_at",
        "status",
    }
    assert doc["created_at"].tzinfo is not None


def test_retried_insert_does_not_duplicate(repo: InteractionRepository) -> None:
    stored = make(ALICE, 1)
    repo.insert(stored)
    repo.insert(stored)
    assert repo.count(scope=ALICE) == 1


def test_other_visitor_gets_not_found(repo: InteractionRepository) -> None:
    stored = make(ALICE, 1)
    repo.insert(stored)
    with pytest.raises(InteractionNotFound):
        repo.get(stored.id, scope=BOB)


@pytest.mark.parametrize("bad_id", ["", "nope", "0" * 23, "z" * 24, '{"$ne": null}'])
def test_malformed_id_is_not_found(repo: InteractionRepository, bad_id: str) -> None:
    with pytest.raises(InteractionNotFound):
        repo.get(bad_id, scope=ALICE)


def test_page_is_newest_first_and_scoped(repo: InteractionRepository) -> None:
    for n in range(5):
        repo.insert(make(ALICE, n))
    repo.insert(make(BOB, 99))
    page = repo.page(scope=ALICE, limit=10)
    assert [i.prompt for i in page.items] == [f"prompt {n}" for n in (4, 3, 2, 1, 0)]
    assert page.next_cursor is None


def test_keyset_pages_cover_everything_once_even_with_equal_timestamps(repo: InteractionRepository) -> None:
    for n in range(7):
        repo.insert(make(ALICE, n, created_at=BASE_TIME))  # same instant: the _id breaks ties
    seen: list[str] = []
    cursor = None
    while True:
        page = repo.page(scope=ALICE, cursor=cursor, limit=3)
        seen.extend(i.id for i in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 7
    assert len(set(seen)) == 7


def test_pages_have_no_gaps_or_duplicates_while_new_rows_arrive(repo: InteractionRepository) -> None:
    for n in range(10):
        repo.insert(make(ALICE, n))
    first = repo.page(scope=ALICE, limit=4)
    stop = threading.Event()

    def keep_inserting() -> None:
        n = 1000
        while not stop.is_set():
            repo.insert(make(ALICE, n))
            n += 1

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        rest: list[Interaction] = []
        cursor = first.next_cursor
        while cursor:
            page = repo.page(scope=ALICE, cursor=cursor, limit=4)
            rest.extend(page.items)
            cursor = page.next_cursor
    finally:
        stop.set()
        writer.join()
    prompts = [i.prompt for i in first.items + rest]
    assert prompts == [f"prompt {n}" for n in range(9, -1, -1)]


def test_count_is_scoped(repo: InteractionRepository) -> None:
    repo.insert(make(ALICE, 1))
    repo.insert(make(ALICE, 2))
    repo.insert(make(BOB, 3))
    assert repo.count(scope=ALICE) == 2


def test_cursor_round_trips() -> None:
    stored = make(ALICE, 1)
    created_at, object_id = decode_cursor(encode_cursor(stored.created_at, stored.id))
    assert created_at == stored.created_at
    assert str(object_id) == stored.id


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "MTIz", "bm90OmFuOmlk", ""])
def test_bad_cursor_raises_invalid_cursor(repo: InteractionRepository, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


def test_ensure_indexes_is_idempotent_and_covers_the_documented_fields(repo: InteractionRepository) -> None:
    repo.ensure_indexes()
    repo.ensure_indexes()
    keys = [tuple(spec["key"]) for spec in repo.collection.list_indexes()]
    assert ("created_at",) in keys
    assert ("session_id",) in keys
    assert ("model",) in keys
    assert ("session_id", "created_at", "_id") in keys


def test_unreachable_server_raises_store_unavailable() -> None:
    from app.tests.conftest import free_port

    repository = InteractionRepository(
        uri=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        db_name="x",
        collection_name="y",
        timeout_ms=200,
    )
    with pytest.raises(StoreUnavailable):
        repository.count(scope=ALICE)


def test_client_is_created_once_per_process(repo: InteractionRepository) -> None:
    assert repo.client is repo.client


def test_password_is_redacted_from_uri() -> None:
    assert (
        redact_uri("mongodb+srv://user:s3cret@cluster0.example.net/db")
        == "mongodb+srv://user:***@cluster0.example.net/db"
    )
    assert redact_uri("mongodb://127.0.0.1:27017/") == "mongodb://127.0.0.1:27017/"
