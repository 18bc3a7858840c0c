"""The durable outbox behind ``store_interaction``: write-through, queueing, ordered idempotent replay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Interaction, Scope
from app.errors import StoreUnavailable
from app.services import mongo_generation, mongo_repo, outbox
from app.services.interactions import get_interaction
from app.services.mongo_documents import to_document
from app.services.mongo_repo import InteractionRepository, get_repository
from app.services.outbox import Outbox, ReplayWorker, get_outbox, get_worker
from app.services.records import store_interaction

MINE = Scope(session_id="visitor-a")


def make(prompt: str, session_id: str = "visitor-a") -> Interaction:
    return Interaction(prompt=prompt, output="out", model="m", task="text-generation", session_id=session_id)


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompts of the records the outbox replay writes, in order (through the real write)."""
    prompts: list[str] = []

    def recording_write(repository: InteractionRepository, interaction: Interaction) -> None:
        mongo_generation.write_record(repository, interaction)
        prompts.append(interaction.prompt)

    monkeypatch.setattr(outbox, "write_record", recording_write)
    return prompts


def bring_store_back(settings: SettingsWrapper, mongo_uri: str, db_name: str) -> None:
    settings.MONGO_URI = mongo_uri
    settings.MONGO_DB_NAME = db_name
    settings.MONGO_TIMEOUT_MS = 3000
    mongo_repo.reset_repository()


def test_added_interaction_is_on_disk_for_a_new_process(tmp_path: Path) -> None:
    first = Outbox(path=tmp_path / "outbox.sqlite3")
    first.add(make("kept"))
    first.close()
    reopened = Outbox(path=tmp_path / "outbox.sqlite3")
    assert reopened.depth() == 1
    assert [item.interaction_id for item in reopened.pending()] != []
    found = reopened.find(reopened.pending()[0].interaction_id)
    assert found is not None and found.prompt == "kept"


def test_round_trip_keeps_id_and_millisecond_timestamp(tmp_path: Path) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    original = make("exact")
    box.add(original)
    restored = box.find(original.id)
    assert restored is not None
    assert to_document(restored) == to_document(original)


@pytest.mark.usefixtures("store_settings")
def test_reachable_store_gets_the_interaction_and_outbox_stays_empty() -> None:
    interaction = make("direct")
    store_interaction(interaction)
    assert get_outbox().depth() == 0
    assert get_repository().get(interaction.id, scope=MINE).prompt == "direct"


@pytest.mark.usefixtures("unreachable_store")
def test_unreachable_store_keeps_the_interaction_and_returns_normally() -> None:
    store_interaction(make("waiting"))
    assert get_outbox().depth() == 1


@pytest.mark.usefixtures("unreachable_store")
def test_second_interaction_queues_behind_the_first() -> None:
    store_interaction(make("first"))
    store_interaction(make("second"))
    box = get_outbox()
    assert [box.find(item.interaction_id).prompt for item in box.pending()] == ["first", "second"]  # type: ignore[union-attr]


def test_replay_writes_oldest_first_and_empties_the_outbox(
    tmp_path: Path, mongo_uri: str, db_name: str, written: list[str]
) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    for prompt in ("one", "two", "three"):
        box.add(make(prompt))
    repo = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions")
    try:
        result = box.replay(repository=repo)
        assert (result.replayed, result.remaining, result.store_error) == (3, 0, None)
        assert written == ["one", "two", "three"]
        assert box.depth() == 0
    finally:
        repo.client.drop_database(db_name)
        repo.close()


def test_replaying_an_already_stored_interaction_does_not_duplicate_it(
    repo: InteractionRepository, tmp_path: Path
) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    interaction = make("once")
    repo.insert(interaction)  # e.g. MongoDB stored it but the answer to the write was lost
    box.add(interaction)
    box.replay(repository=repo)
    assert repo.collection.count_documents({"prompt": "once"}) == 1
    assert box.depth() == 0


def test_replay_against_a_dead_store_keeps_everything(tmp_path: Path, unreachable_store: SettingsWrapper) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    box.add(make("a"))
    box.add(make("b"))
    result = box.replay()
    assert (result.replayed, result.remaining) == (0, 2)
    assert result.store_error is not None


def test_undecodable_item_is_set_aside_and_does_not_block_the_queue(
    repo: InteractionRepository, tmp_path: Path
) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    box.add(make("before"))
    with box._db() as db:
        db.execute("INSERT INTO outbox (interaction_id, document, queued_at) VALUES ('broken', '{not json', 0)")
    box.add(make("after"))
    result = box.replay(repository=repo)
    assert (result.replayed, result.failed, result.remaining) == (2, 1, 0)
    assert box.failed_count() == 1


def test_worker_replays_once_the_store_is_back(
    unreachable_store: SettingsWrapper, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    box.add(make("late"))
    worker = ReplayWorker(outbox=box, first_delay=0.05, max_delay=0.1)
    worker.wake()
    bring_store_back(unreachable_store, mongo_uri, db_name)
    try:
        deadline = time.monotonic() + 20
        while box.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.depth() == 0
        assert get_repository().collection.count_documents({"prompt": "late"}) == 1
    finally:
        worker.stop()
        get_repository().client.drop_database(db_name)
        mongo_repo.reset_repository()


def test_replay_outbox_command_writes_waiting_interactions(
    unreachable_store: SettingsWrapper, mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_interaction(make("queued"))
    get_worker().stop()  # the command, not the background worker, must do the replay here
    bring_store_back(unreachable_store, mongo_uri, db_name)
    try:
        call_command("replay_outbox")
        assert "Replayed 1 interaction(s)" in capsys.readouterr().out
        assert get_repository().collection.count_documents({"prompt": "queued"}) == 1
    finally:
        get_repository().client.drop_database(db_name)
        mongo_repo.reset_repository()


@pytest.mark.usefixtures("unreachable_store")
def test_replay_outbox_command_fails_clearly_while_the_store_is_down() -> None:
    store_interaction(make("queued"))
    with pytest.raises(CommandError, match="MongoDB is unreachable"):
        call_command("replay_outbox")
    assert get_outbox().depth() == 1


@pytest.mark.usefixtures("unreachable_store")
def test_queued_interaction_is_visible_to_its_visitor_only() -> None:
    interaction = make("mine")
    store_interaction(interaction)
    assert get_interaction(scope=MINE, interaction_id=interaction.id).prompt == "mine"
    with pytest.raises(StoreUnavailable):  # not shown to visitor-b: the store's own answer stands
        get_interaction(scope=Scope(session_id="visitor-b"), interaction_id=interaction.id)


@pytest.mark.usefixtures("causal_model_settings", "unreachable_store")
def test_banner_counts_waiting_interactions(client: Client) -> None:
    client.post("/prompt/", {"prompt": "one", "max_new_tokens": "2"})
    client.post("/prompt/", {"prompt": "two", "max_new_tokens": "2"})
    page = client.get("/").content.decode()
    assert "History unavailable — 2 interactions waiting to be saved." in page


@pytest.mark.usefixtures("store_settings")
def test_no_banner_when_nothing_waits(client: Client) -> None:
    assert "History unavailable" not in client.get("/").content.decode()


@pytest.mark.usefixtures("unreachable_store")
def test_history_page_shows_a_message_and_the_banner_during_an_outage(client: Client) -> None:
    from app.errors import STORE_UNAVAILABLE

    store_interaction(make("waiting"))
    response = client.get("/history/")
    body = response.content.decode()
    assert response.status_code == 503
    assert STORE_UNAVAILABLE in body
    assert "History unavailable — 1 interaction waiting to be saved." in body


def test_many_wake_calls_do_not_defeat_the_back_off(tmp_path: Path) -> None:
    attempts: list[float] = []

    def failing_replay() -> object:
        from app.services.outbox import ReplayResult

        attempts.append(time.monotonic())
        return ReplayResult(replayed=0, failed=0, remaining=1, store_error="down")

    worker = ReplayWorker(outbox=Outbox(path=tmp_path / "o.sqlite3"), first_delay=0.3, max_delay=0.3,
                          replay=failing_replay)  # type: ignore[arg-type]  # fmt: skip
    worker.wake()
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:
        worker.wake()  # e.g. every page view while the store is down
        time.sleep(0.001)
    worker.stop()
    assert len(attempts) <= 5  # ~0.9 s / 0.3 s, not one per wake() call (hundreds)


def test_a_final_record_replaces_its_pending_one_in_the_queue_and_in_the_store(
    tmp_path: Path, mongo_uri: str, db_name: str
) -> None:
    box = Outbox(path=tmp_path / "o.sqlite3")
    pending = make("slow")
    pending.status, pending.output = "pending", ""
    first_seq = box.add(pending)
    box.add(make("later"))
    final = make("slow")
    final.id, final.created_at, final.output = pending.id, pending.created_at, "the whole answer"
    assert box.add(final) == first_seq  # same place in the queue: the order is kept
    repo = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions")
    try:
        repo.insert(pending)  # the pending record had reached the store before it went away
        assert box.replay(repository=repo).replayed == 2
        stored = repo.get(pending.id, scope=MINE)
        assert (stored.status, stored.output) == ("ok", "the whole answer")
        mongo_generation.write_record(repo, pending)  # a late replay of the pending record changes nothing
        assert repo.get(pending.id, scope=MINE).status == "ok"
        assert repo.count(scope=MINE) == 2
    finally:
        repo.client.drop_database(db_name)
        repo.close()
