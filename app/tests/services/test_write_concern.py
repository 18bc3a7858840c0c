"""Durable writes: every interaction write is journaled unless the URI chose its own write concern.

The kill tests own a SecantusDB server started *without* ``--sync-on-commit``: there only a journaled
write (``j=True``) is on disk when it is acknowledged, which is exactly what the repository must ask for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient, WriteConcern

from app.domain.interaction import Interaction, Scope
from app.services.mongo_repo import InteractionRepository, durable_write_concern
from app.tests.store_process import OwnedStore

KILLED = Scope(session_id="killed")


def repository(uri: str) -> InteractionRepository:
    return InteractionRepository(uri=uri, db_name="durable_test", collection_name="interactions", timeout_ms=3000)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"j": True}),
        ("?w=majority", {"w": "majority", "j": True}),
        ("?w=1", {"w": 1, "j": True}),
        ("?w=majority&wTimeoutMS=2500", {"w": "majority", "wtimeout": 2500, "j": True}),
        ("?w=1&journal=false", {"w": 1, "j": False}),
        ("?journal=true", {"j": True}),
        ("?w=0", {"w": 0}),
    ],
)
def test_write_concern_is_journaled_unless_the_uri_sets_journal(query: str, expected: dict[str, object]) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(f"mongodb://127.0.0.1:1/{query}", connect=False)
    assert durable_write_concern(client.write_concern).document == expected
    client.close()


def test_every_repository_collection_uses_the_journaled_write_concern() -> None:
    repo = repository("mongodb://127.0.0.1:1/?w=majority")
    assert repo.collection.write_concern == WriteConcern(w="majority", j=True)
    assert repo.days.write_concern == WriteConcern(w="majority", j=True)
    assert repo.sibling("_rate").write_concern == WriteConcern(w="majority", j=True)
    repo.close()


@pytest.fixture
def killable_store(tmp_path: Path) -> Iterator[OwnedStore]:
    store = OwnedStore(tmp_path)  # no --sync-on-commit: durability comes from the write concern alone
    store.start()
    yield store
    store.stop()


def test_acknowledged_inserts_survive_a_sigkill_of_the_store(killable_store: OwnedStore) -> None:
    repo = repository(killable_store.uri)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    written = [
        Interaction(
            prompt=f"durable {n}",
            output=f"answer {n}",
            model="tiny",
            task="text-generation",
            session_id=KILLED.session_id,
            created_at=base + timedelta(seconds=n),
        )
        for n in range(20)
    ]
    for interaction in written:
        repo.insert(interaction)  # acknowledged: returns only once the server answered
    repo.close()

    killable_store.kill()
    killable_store.start()  # same port, same data folder

    with MongoClient(killable_store.uri, serverSelectionTimeoutMS=5000) as client:
        prompts = sorted(doc["prompt"] for doc in client["durable_test"]["interactions"].find({}, {"prompt": 1}))
    assert prompts == sorted(item.prompt for item in written)
