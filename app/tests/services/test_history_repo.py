"""History queries through real PyMongo: keyset pages, filters, search, isolation, delete, claim, import."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.filters import NO_FILTER, HistoryFilter
from app.domain.ids import utc_now
from app.domain.interaction import STATUS_ERROR, Interaction, Scope
from app.domain.search import parse_query
from app.errors import InteractionNotFound, InvalidCursor
from app.services import mongo_scan
from app.services.mongo_admin import backfill_search_fields
from app.services.mongo_documents import to_document
from app.services.mongo_repo import InteractionRepository

ALICE = Scope(session_id="alice")
BOB = Scope(session_id="bob")
BASE = datetime(2025, 6, 1, tzinfo=UTC)


def make(scope: Scope, created_at: datetime, prompt: str = "hello", **fields: object) -> Interaction:
    values: dict[str, object] = {"output": "answer", "model": "tiny", "task": "text-generation"}
    values.update(fields)
    return Interaction(prompt=prompt, created_at=created_at, **scope.owner_fields(), **values)  # type: ignore[arg-type]


def all_pages(
    repo: InteractionRepository, scope: Scope, filters: HistoryFilter = NO_FILTER, limit: int = 7
) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = repo.page(scope=scope, cursor=cursor, limit=limit, filters=filters)
        ids.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def test_pages_walk_every_interaction_newest_first_across_sparse_and_dense_times(
    repo: InteractionRepository,
) -> None:
    # Years apart, seconds apart and the very same millisecond: every window size gets exercised.
    moments = [BASE - timedelta(days=400 * n) for n in range(5)]
    moments += [BASE + timedelta(seconds=n) for n in range(20)]
    moments += [BASE + timedelta(hours=1)] * 6
    stored = [make(ALICE, moment, prompt=f"p{n}") for n, moment in enumerate(moments)]
    repo.import_batch(stored)
    expected = [i.id for i in sorted(stored, key=lambda i: (i.created_at, i.id), reverse=True)]
    assert all_pages(repo, ALICE) == expected


def test_last_page_has_no_cursor_and_exact_limit_does_not_promise_more(repo: InteractionRepository) -> None:
    repo.import_batch([make(ALICE, BASE + timedelta(minutes=n)) for n in range(4)])
    page = repo.page(scope=ALICE, limit=4)
    assert len(page.items) == 4
    assert page.next_cursor is None


def test_interactions_arriving_while_paging_cause_no_duplicates_or_gaps(repo: InteractionRepository) -> None:
    now = utc_now()
    first = [make(ALICE, now - timedelta(minutes=n)) for n in range(30)]
    repo.import_batch(first)
    page = repo.page(scope=ALICE, limit=10)
    seen = [item.id for item in page.items]

    def writer() -> None:
        for n in range(15):
            repo.insert(make(ALICE, utc_now() + timedelta(milliseconds=n)))

    thread = threading.Thread(target=writer)
    thread.start()
    cursor = page.next_cursor
    while cursor:
        page = repo.page(scope=ALICE, cursor=cursor, limit=10)
        seen.extend(item.id for item in page.items)
        cursor = page.next_cursor
    thread.join()
    assert seen == [i.id for i in first]


def test_other_visitors_interactions_never_appear(repo: InteractionRepository) -> None:
    repo.import_batch([make(ALICE, BASE, prompt="alice secret"), make(BOB, BASE, prompt="bob secret")])
    assert [i.prompt for i in repo.page(scope=ALICE).items] == ["alice secret"]
    assert repo.page(scope=ALICE, filters=HistoryFilter(search=parse_query("bob"))).items == []


def test_search_needs_every_word_and_takes_the_last_as_prefix(repo: InteractionRepository) -> None:
    repo.import_batch(
        [
            make(ALICE, BASE, prompt="What is the capital of France?", output="Paris."),
            make(ALICE, BASE + timedelta(seconds=1), prompt="Capital of Spain?", output="Madrid."),
            make(ALICE, BASE + timedelta(seconds=2), prompt="France facts", output="Cheese."),
        ]
    )
    found = repo.page(scope=ALICE, filters=HistoryFilter(search=parse_query("CAPITAL fra")))
    assert [i.prompt for i in found.items] == ["What is the capital of France?"]


def test_search_ignores_accents_case_and_punctuation(repo: InteractionRepository) -> None:
    repo.import_batch([make(ALICE, BASE, prompt="Une CRÈME-brûlée, s'il vous plaît!")])
    for query in ("creme brulee", "Crème Brû", "plait", "creme-bru"):
        assert len(repo.page(scope=ALICE, filters=HistoryFilter(search=parse_query(query))).items) == 1, query


def test_search_matches_the_answer_too(repo: InteractionRepository) -> None:
    repo.import_batch([make(ALICE, BASE, prompt="question", output="Lisbon is lovely")])
    assert len(repo.page(scope=ALICE, filters=HistoryFilter(search=parse_query("lisb"))).items) == 1


def test_short_prefix_search_pages_through_all_matches(repo: InteractionRepository) -> None:
    items = [make(ALICE, BASE + timedelta(minutes=n), prompt=f"zebra {n}" if n % 3 else f"lion {n}") for n in range(30)]
    repo.import_batch(items)
    ids = all_pages(repo, ALICE, HistoryFilter(search=parse_query("ze")), limit=4)
    assert len(ids) == 20
    assert len(set(ids)) == 20


def test_filters_by_model_task_status_and_dates(repo: InteractionRepository) -> None:
    repo.import_batch(
        [
            make(ALICE, BASE, model="a", prompt="one"),
            make(ALICE, BASE + timedelta(days=1), model="b", prompt="two"),
            make(ALICE, BASE + timedelta(days=2), model="b", task="text2text-generation", prompt="three"),
            make(ALICE, BASE + timedelta(days=3), model="b", status=STATUS_ERROR, prompt="four"),
        ]
    )

    def prompts(**fields: object) -> list[str]:
        return [i.prompt for i in repo.page(scope=ALICE, filters=HistoryFilter(**fields)).items]  # type: ignore[arg-type]

    assert prompts(model="b") == ["four", "three", "two"]
    assert prompts(task="text2text-generation") == ["three"]
    assert prompts(status=STATUS_ERROR) == ["four"]
    assert prompts(model="b", status="ok") == ["three", "two"]
    assert prompts(since=BASE + timedelta(days=1), until=BASE + timedelta(days=3)) == ["three", "two"]


def test_bad_cursor_is_refused(repo: InteractionRepository) -> None:
    with pytest.raises(InvalidCursor):
        repo.page(scope=ALICE, cursor="not-a-cursor!")


def test_every_document_carries_owner_and_search_fields(repo: InteractionRepository) -> None:
    repo.insert(make(ALICE, BASE, prompt="Hello World"))
    doc = repo.collection.find_one({})
    assert doc is not None
    assert doc["owner"] == "s:alice"
    assert doc["search_tokens"] == ["answer", "hello", "world"]
    assert "p:hel" in doc["search_keys"]


def test_search_indexes_exist(repo: InteractionRepository) -> None:
    names = set(repo.collection.index_information())
    assert {"owner_newest_first", "owner_tokens_newest_first", "owner_keys_newest_first", "deleted_ttl"} <= names


def test_soft_delete_hides_and_restore_brings_back(repo: InteractionRepository) -> None:
    item = make(ALICE, BASE)
    repo.insert(item)
    repo.soft_delete(item.id, scope=ALICE)
    assert repo.page(scope=ALICE).items == []
    with pytest.raises(InteractionNotFound):
        repo.get(item.id, scope=ALICE)
    repo.restore(item.id, scope=ALICE)
    assert repo.get(item.id, scope=ALICE).id == item.id


def test_another_visitor_cannot_delete_or_restore(repo: InteractionRepository) -> None:
    item = make(ALICE, BASE)
    repo.insert(item)
    with pytest.raises(InteractionNotFound):
        repo.soft_delete(item.id, scope=BOB)
    repo.soft_delete(item.id, scope=ALICE)
    with pytest.raises(InteractionNotFound):
        repo.restore(item.id, scope=BOB)


def test_delete_all_removes_only_this_history(repo: InteractionRepository) -> None:
    repo.import_batch([make(ALICE, BASE), make(ALICE, BASE), make(BOB, BASE)])
    assert repo.delete_all(scope=ALICE) == 2
    assert repo.page(scope=ALICE).items == []
    assert len(repo.page(scope=BOB).items) == 1


def test_user_scope_spans_devices_and_claim_moves_visitor_history(repo: InteractionRepository) -> None:
    laptop = Scope(session_id="laptop", user_id="7")
    phone = Scope(session_id="phone", user_id="7")
    repo.insert(make(laptop, BASE, prompt="from laptop"))
    repo.insert(make(Scope(session_id="phone"), BASE + timedelta(seconds=1), prompt="before login"))
    assert [i.prompt for i in repo.page(scope=phone).items] == ["from laptop"]
    assert repo.claim(session_id="phone", user_id="7") == 1
    assert [i.prompt for i in repo.page(scope=phone).items] == ["before login", "from laptop"]


def test_shared_scope_sees_everyone_but_not_deleted(repo: InteractionRepository) -> None:
    first, second = make(ALICE, BASE), make(BOB, BASE + timedelta(seconds=1))
    repo.import_batch([first, second])
    repo.soft_delete(first.id, scope=ALICE)
    assert [i.id for i in repo.page(scope=Scope(session_id="carol", shared=True)).items] == [second.id]


def test_import_batch_is_idempotent_by_id(repo: InteractionRepository) -> None:
    items = [make(ALICE, BASE + timedelta(seconds=n)) for n in range(3)]
    assert repo.import_batch(items[:2]).inserted == 2
    result = repo.import_batch(items)
    assert (result.inserted, result.duplicates) == (1, [items[0].id, items[1].id])


def test_backfill_adds_search_fields_to_old_documents(repo: InteractionRepository) -> None:
    item = make(ALICE, BASE, prompt="Old Document")
    doc = to_document(item)
    for name in ("owner", "search_tokens", "search_keys", "user_id"):
        doc.pop(name)
    repo.collection.insert_one(doc)
    assert backfill_search_fields(repo, batch=10) == 1
    found = repo.page(scope=ALICE, filters=HistoryFilter(search=parse_query("old docu")))
    assert [i.id for i in found.items] == [item.id]


def test_a_document_written_around_the_repository_is_still_listed(repo: InteractionRepository) -> None:
    kept = make(ALICE, BASE)
    repo.insert(kept)
    stray = make(ALICE, BASE - timedelta(days=10), prompt="written directly")
    repo.collection.insert_one(to_document(stray))  # no day document for it
    assert all_pages(repo, ALICE) == [kept.id, stray.id]


def test_first_page_after_a_long_pause_reads_little_more_than_the_page(
    repo: InteractionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    last_active = utc_now() - timedelta(days=3)
    repo.import_batch([make(ALICE, last_active - timedelta(minutes=n)) for n in range(300)])
    read: list[int] = []
    original = mongo_scan._fetch

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        docs = list(original(*args, **kwargs))  # type: ignore[arg-type]
        read.append(len(docs))
        return iter(docs)

    monkeypatch.setattr(mongo_scan, "_fetch", counting)
    page = repo.page(scope=ALICE, limit=20)
    assert len(page.items) == 20
    assert sum(read) <= 60
    deeper = repo.page(scope=ALICE, cursor=page.next_cursor, limit=20)
    assert len(deeper.items) == 20
    assert sum(read) <= 120
