"""Conversations: follow-ups carry the earlier turns (trimmed to the context), branches, the conversation
page, turn counts and search links in the history, export/import of threads, /v1 thread continuation,
and the refusals (foreign, unknown, malformed, still running, too deep) that change nothing stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from django.test import Client

from app.domain.conversation import MAX_TURNS, THREAD_IDS_INVALID, build_thread, parse_thread_ids
from app.domain.filters import HistoryFilter
from app.domain.generation import ChatTurn
from app.domain.interaction import STATUS_PENDING, Interaction, Scope
from app.errors import CONVERSATION_TOO_LONG, FOLLOW_UP_NOT_FOUND, FOLLOW_UP_NOT_READY
from app.services import history, history_import
from app.services.context_window import estimate_tokens, fit, meter_for
from app.services.model_registry import service_for
from app.services.mongo_documents import to_document
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("app_settings", "fresh_generation_state")
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def scope_of(client: Client) -> Scope:
    client.get("/")
    return Scope(session_id=str(client.session[VISITOR_KEY]))


def ask(client: Client, prompt: str, **fields: str) -> Any:
    """The no-JavaScript form post: waits for the answer, redirects to it."""
    return client.post("/prompt/", {"prompt": prompt, "max_new_tokens": "4", **fields})


def answered(client: Client, prompt: str, **fields: str) -> dict[str, Any]:
    response = ask(client, prompt, **fields)
    assert response.status_code == 303, response.content.decode()[:500]
    answer_id = response["Location"].split("answer=")[1]
    doc = get_repository().collection.find_one({"_id": ObjectId(answer_id)})
    assert doc is not None
    return doc


def seed_chain(scope: Scope, prompts: list[str], *, conversation: str | None = None) -> list[Interaction]:
    """Finished turns stored one after the other (each the parent of the next)."""
    items: list[Interaction] = []
    for n, prompt in enumerate(prompts):
        item = Interaction(
            prompt=prompt,
            output=f"answer {n}",
            model="tiny",
            task="text-generation",
            created_at=BASE + timedelta(minutes=n),
            parent_id=items[-1].id if items else None,
            **scope.owner_fields(),
        )
        item.conversation_id = conversation or (items[0].id if items else item.id)
        items.append(item)
    get_repository().collection.insert_many([to_document(item) for item in items])
    return items


def count() -> int:
    return get_repository().collection.count_documents({})


# --- the thread as a tree (pure) ---------------------------------------------------------------


def test_thread_follows_the_newest_branch_and_reports_siblings() -> None:
    scope = Scope(session_id="s")
    root, first, *_ = seed_chain_objects(scope, ["a", "b"])
    second = make_turn(scope, "b again", parent=root, minutes=5)
    thread = build_thread([root, first, second], conversation_id=root.id)
    assert thread is not None
    assert [turn.interaction.id for turn in thread.turns] == [root.id, second.id]
    assert (thread.turns[1].position, len(thread.turns[1].siblings), thread.turns[1].previous_id) == (2, 2, first.id)
    older = build_thread([root, first, second], conversation_id=root.id, at=first.id)
    assert older is not None and older.turns[1].interaction.id == first.id and older.turns[1].next_id == second.id
    assert build_thread([root], conversation_id=root.id, at=first.id) is None


def test_a_parent_that_points_at_nothing_is_a_branch_root_and_loops_end() -> None:
    scope = Scope(session_id="s")
    orphan = make_turn(scope, "orphan", parent=None, minutes=0)
    orphan.parent_id = "f" * 24
    loop_a = make_turn(scope, "a", parent=None, minutes=1)
    loop_b = make_turn(scope, "b", parent=loop_a, minutes=2)
    loop_a.parent_id = loop_b.id
    thread = build_thread([orphan], conversation_id=orphan.id)
    assert thread is not None and [t.interaction.prompt for t in thread.turns] == ["orphan"]
    looped = build_thread([loop_a, loop_b], conversation_id=loop_a.id, at=loop_b.id)
    assert looped is not None and {t.interaction.id for t in looped.turns} == {loop_a.id, loop_b.id}


def test_imported_thread_ids_must_be_ids_or_null() -> None:
    assert parse_thread_ids({"conversation_id": "A" * 24, "parent_id": None}) == ("a" * 24, None)
    for bad in ({"parent_id": "x"}, {"conversation_id": 5}, {"parent_id": {"$ne": None}}):
        with pytest.raises(ValueError, match="24-character"):
            parse_thread_ids(bad)


def make_turn(scope: Scope, prompt: str, *, parent: Interaction | None, minutes: int) -> Interaction:
    item = Interaction(
        prompt=prompt,
        output="out",
        model="m",
        task="text-generation",
        created_at=BASE + timedelta(minutes=minutes),
        parent_id=parent.id if parent else None,
        **scope.owner_fields(),
    )
    item.conversation_id = parent.thread_id if parent else item.id
    return item


def seed_chain_objects(scope: Scope, prompts: list[str]) -> list[Interaction]:
    items: list[Interaction] = []
    for n, prompt in enumerate(prompts):
        items.append(make_turn(scope, prompt, parent=items[-1] if items else None, minutes=n))
    return items


# --- follow-ups ---------------------------------------------------------------------------------


def test_follow_up_sends_the_earlier_turns_and_links_the_records(
    client: Client, received: list[tuple[ChatTurn, ...]]
) -> None:
    first = answered(client, "What is the capital of France?")
    assert first["conversation_id"] == str(first["_id"]) and first["parent_id"] is None
    second = answered(client, "And of Italy?", parent_id=str(first["_id"]))
    assert second["conversation_id"] == str(first["_id"]) and second["parent_id"] == str(first["_id"])
    assert received[-1] == (
        ChatTurn("user", "What is the capital of France?"),
        ChatTurn("assistant", first["output"]),
        ChatTurn("user", "And of Italy?"),
    )
    assert second["messages"] is None  # the page thread is rebuilt from the records, not copied into each
    third = answered(client, "And of Spain?", parent_id=str(second["_id"]))
    assert [turn.content for turn in received[-1]] == [
        "What is the capital of France?",
        first["output"],
        "And of Italy?",
        second["output"],
        "And of Spain?",
    ]
    assert third["conversation_id"] == str(first["_id"])
    assert second["prompt_tokens"] > first["prompt_tokens"]  # the chat template got every turn


def test_follow_up_to_an_old_record_without_a_conversation_id_leaves_it_unchanged(client: Client) -> None:
    scope = scope_of(client)
    old = to_document(make_turn(scope, "written before threads", parent=None, minutes=0))
    del old["conversation_id"], old["parent_id"], old["turns_dropped"]
    get_repository().collection.insert_one(old)
    follow = answered(client, "Go on", parent_id=str(old["_id"]))
    assert follow["conversation_id"] == str(old["_id"])
    stored = get_repository().collection.find_one({"_id": old["_id"]})
    assert stored is not None and "conversation_id" not in stored
    page = client.get(f"/conversations/{old['_id']}/")
    assert page.status_code == 200
    assert page.content.decode().count("data-turn-id=") == 2


def test_the_prompt_page_offers_the_follow_up_and_a_new_conversation(client: Client) -> None:
    first = answered(client, "Hello there")
    page = client.get(f"/?follow={first['_id']}").content.decode()
    assert f'name="parent_id" value="{first["_id"]}"' in page
    assert 'Follow-up to “<span class="follow-up-snippet">Hello there</span>”' in page
    assert "data-new-conversation" in page
    edit = client.get(f"/?answer={first['_id']}").content.decode()
    assert f'name="sibling_of" value="{first["_id"]}"' in edit
    htmx = client.post("/prompt/", {"prompt": "Next", "max_new_tokens": "3"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="follow-up"' in htmx and 'hx-swap-oob="true"' in htmx and 'name="parent_id"' in htmx


@pytest.mark.parametrize("parent", ["0" * 24, "not-an-id", "{'$ne': null}", "a" * 200])
def test_follow_up_to_an_unknown_or_malformed_turn_is_404_and_stores_nothing(client: Client, parent: str) -> None:
    before = count()
    response = ask(client, "Continue", parent_id=parent)
    assert response.status_code == 404
    assert FOLLOW_UP_NOT_FOUND in response.content.decode()
    assert count() == before


def test_follow_up_to_another_visitors_turn_is_404_everywhere(client: Client, other_client: Client) -> None:
    theirs = answered(other_client, "My secret question")
    before = count()
    for path in ("/stream/", "/prompt/"):
        response = client.post(path, {"prompt": "x", "parent_id": str(theirs["_id"])}, HTTP_HX_REQUEST="true")
        assert response.status_code == 404 and FOLLOW_UP_NOT_FOUND in response.content.decode()
        response = client.post(path, {"prompt": "x", "sibling_of": str(theirs["_id"])}, HTTP_HX_REQUEST="true")
        assert response.status_code == 404
    assert client.get(f"/?follow={theirs['_id']}").status_code == 404
    assert client.get(f"/conversations/{theirs['_id']}/").status_code == 404
    assert client.get(f"/conversations/{theirs['_id']}/?at={theirs['_id']}").status_code == 404
    assert count() == before
    assert "My secret question" not in client.get(f"/conversations/{theirs['_id']}/").content.decode()


def test_follow_up_to_a_running_answer_is_422(client: Client) -> None:
    scope = scope_of(client)
    running = make_turn(scope, "still going", parent=None, minutes=0)
    running.status = STATUS_PENDING
    get_repository().insert(running)
    before = count()
    response = ask(client, "next", parent_id=running.id)
    assert response.status_code == 422 and FOLLOW_UP_NOT_READY in response.content.decode()
    assert count() == before


def test_a_conversation_deeper_than_the_limit_is_refused_with_422(client: Client) -> None:
    chain = seed_chain(scope_of(client), [f"turn {n}" for n in range(MAX_TURNS)])
    before = count()
    response = ask(client, "one more", parent_id=chain[-1].id)
    assert response.status_code == 422
    assert CONVERSATION_TOO_LONG.format(limit=MAX_TURNS) in response.content.decode()
    assert count() == before
    assert ask(client, "a shorter branch", parent_id=chain[-3].id).status_code == 303  # the limit is per thread


# --- the context window -------------------------------------------------------------------------


def test_oldest_turns_are_left_out_to_fit_the_context(client: Client, received: list[tuple[ChatTurn, ...]]) -> None:
    long_text = "the quick brown fox jumps over the lazy dog " * 12  # ~ 100+ tokens on the tiny tokenizer
    chain = seed_chain(scope_of(client), [f"{n} {long_text}" for n in range(6)])
    service = service_for(None)
    meter = meter_for(service)
    assert meter.exact and meter.limit == 512  # the tiny model's max_position_embeddings
    follow = answered(client, "Sum it up", parent_id=chain[-1].id, max_new_tokens="32")
    dropped = follow["turns_dropped"]
    assert 0 < dropped < len(chain)
    sent = received[-1]
    assert sent[0].content == chain[dropped].prompt and sent[-1] == ChatTurn("user", "Sum it up")
    assert len(sent) == 2 * (len(chain) - dropped) + 1
    assert meter.count(sent) <= meter.limit - 32  # what was sent fits with room for the answer
    one_more = [ChatTurn("user", chain[dropped - 1].prompt), ChatTurn("assistant", "answer"), *sent]
    assert meter.count(one_more) > meter.limit - 32  # and one more earlier turn would not have
    page = client.get(f"/?answer={follow['_id']}").content.decode()
    noun = "turn was" if dropped == 1 else "turns were"
    assert f"{dropped} earlier {noun} left out to fit the model's context" in page
    thread = client.get(f"/conversations/{follow['conversation_id']}/").content.decode()
    assert "left out to fit the model" in thread


def test_a_short_conversation_is_sent_whole() -> None:
    meter = meter_for(service_for(None))
    earlier = [ChatTurn("user", "hi"), ChatTurn("assistant", "hello")]
    assert fit(meter, earlier, ChatTurn("user", "how are you"), max_new_tokens=16) == 0


def test_servers_without_a_tokenizer_use_a_conservative_estimate() -> None:
    assert estimate_tokens([ChatTurn("user", "x" * 300)]) >= 300 // 4


# --- branches and the conversation page ---------------------------------------------------------


def test_edit_and_regenerate_make_siblings_and_the_page_switches_between_them(client: Client) -> None:
    first = answered(client, "Name a colour")
    second = answered(client, "Another one", parent_id=str(first["_id"]))
    edited = answered(client, "Another one, please", sibling_of=str(second["_id"]))
    assert (edited["parent_id"], edited["conversation_id"]) == (str(first["_id"]), str(first["_id"]))
    regenerated = client.post(f"/history/{second['_id']}/regenerate", {"return_to": "conversation"})
    assert regenerated.status_code == 303 and regenerated["Location"].startswith(f"/conversations/{first['_id']}/")
    again = get_repository().collection.find_one({"regenerated_from": str(second["_id"])})
    assert again is not None and again["parent_id"] == str(first["_id"])
    root_edit = answered(client, "Name a fruit", sibling_of=str(first["_id"]))
    assert root_edit["parent_id"] is None and root_edit["conversation_id"] == str(first["_id"])

    page = client.get(f"/conversations/{first['_id']}/?at={second['_id']}").content.decode()
    assert "1/3" in page and "Another one<" in page  # second is the oldest of three versions
    assert f'href="?at={edited["_id"]}#turn-{edited["_id"]}"' in page
    newest = client.get(f"/conversations/{first['_id']}/").content.decode()
    assert "2/2" in newest and "Name a fruit" in newest  # the newest turn is the fruit root (2 roots)


@pytest.mark.parametrize("suffix", ["", "?at=" + "0" * 24, "?at=junk"])
def test_unknown_or_malformed_conversation_is_a_404_page(client: Client, suffix: str) -> None:
    first = answered(client, "hello")
    target = "0" * 24 if not suffix else str(first["_id"])
    response = client.get(f"/conversations/{target}/{suffix}")
    assert response.status_code == 404 and "No such conversation." in response.content.decode()
    assert client.get("/conversations/not-an-id/").status_code == 404


def test_at_a_turn_of_another_conversation_is_404(client: Client) -> None:
    one = answered(client, "first conversation")
    two = answered(client, "second conversation")
    assert client.get(f"/conversations/{one['_id']}/?at={two['_id']}").status_code == 404


def test_answers_on_the_conversation_page_are_escaped(client: Client) -> None:
    chain = seed_chain(scope_of(client), ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"])
    page = client.get(f"/conversations/{chain[0].id}/").content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- history, search, export and import ---------------------------------------------------------


def test_history_rows_count_turns_and_open_the_conversation_at_the_turn(client: Client) -> None:
    chain = seed_chain(scope_of(client), ["zebra first", "zebra second", "zebra third"])
    single = seed_chain(scope_of(client), ["lonely question"])[0]
    page = client.get("/history/").content.decode()
    assert page.count("3 turns") == 3
    link = f"/conversations/{chain[0].id}/?at={chain[1].id}#turn-{chain[1].id}"
    assert link in page
    assert f'href="/history/{single.id}/"' in page
    found = client.get("/history/?q=second").content.decode()
    assert link in found


def test_export_and_import_keep_threads_and_dangling_parents(client: Client) -> None:
    scope = scope_of(client)
    chain = seed_chain(scope, ["one", "two", "three"])
    rows = [json.loads(line) for line in history.export_jsonl(scope=scope, filters=HistoryFilter())]
    by_prompt = {row["prompt"]: row for row in rows}
    assert by_prompt["two"]["parent_id"] == chain[0].id and by_prompt["two"]["conversation_id"] == chain[0].id
    csv_text = "".join(history.export_csv(scope=scope, filters=HistoryFilter()))
    assert csv_text.splitlines()[0].endswith("conversation_id,parent_id,starred,tags")
    other = Scope(session_id="importer")
    # Another history imports two turns without their ids (new records) and without the root: their parents
    # point at nothing there, and stay as they are (dangling branch roots, not errors).
    partial = [json.dumps({**by_prompt[name], "id": None}) for name in ("two", "three")]
    report = history_import.import_jsonl(partial, scope=other)
    assert report.inserted == 2
    docs = {doc["prompt"]: doc for doc in get_repository().collection.find({"owner": other.owner})}
    assert docs["three"]["parent_id"] == chain[1].id and docs["two"]["parent_id"] == chain[0].id
    assert docs["two"]["conversation_id"] == chain[0].id
    page = Client()  # the importer's view of it: the conversation page shows what it has
    session = page.session
    session[VISITOR_KEY] = "importer"
    session.save()
    shown = page.get(f"/conversations/{chain[0].id}/")
    assert shown.status_code == 200 and shown.content.decode().count("data-turn-id=") == 1
    bad = history_import.import_jsonl(
        [json.dumps({"prompt": "p", "created_at": "2026-01-01T00:00:00Z", "parent_id": {"$gt": ""}})], scope=other
    )
    assert bad.inserted == 0 and THREAD_IDS_INVALID in str(bad.rejected)


# --- /v1 ----------------------------------------------------------------------------------------


def v1_record(body: dict[str, Any]) -> dict[str, Any]:
    doc = get_repository().collection.find_one({"_id": ObjectId(body["id"].split("-", 1)[1])})
    assert doc is not None
    return doc


def test_v1_messages_that_extend_an_earlier_answer_continue_its_conversation(settings: Any) -> None:
    client = Client()
    model = str(settings.HF_MODEL)
    first_messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    first = v1_record(v1_with(client, model, first_messages))
    answer = first["output"]
    extended = [*first_messages, {"role": "assistant", "content": answer}, {"role": "user", "content": "More"}]
    second = v1_record(v1_with(client, model, extended))
    assert (second["parent_id"], second["conversation_id"]) == (str(first["_id"]), str(first["_id"]))
    assert second["messages"] == extended  # /v1 records keep the wire conversation as before
    changed = [
        *first_messages,
        {"role": "assistant", "content": answer + " (edited)"},
        {"role": "user", "content": "More"},
    ]
    third = v1_record(v1_with(client, model, changed))
    assert third["parent_id"] is None and third["conversation_id"] == str(third["_id"])


def v1_with(client: Client, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    response = client.post(
        "/v1/chat/completions",
        json.dumps({"model": model, "messages": messages, "max_tokens": 4}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content.decode()
    body: dict[str, Any] = response.json()
    return body


def test_the_detail_page_links_to_its_conversation_even_for_a_record_from_before_threads(client: Client) -> None:
    scope = scope_of(client)
    root, follow = seed_chain(scope, ["first", "second"])
    legacy = Interaction(
        prompt="old", output="old answer", model="tiny", task="text-generation", **scope.owner_fields()
    )
    legacy_doc = to_document(legacy)
    legacy_doc.pop("conversation_id")
    get_repository().collection.insert_one(legacy_doc)
    for item, thread in ((follow, root.id), (legacy, legacy.id)):
        page = client.get(f"/history/{item.id}/").content.decode()
        link = f"/conversations/{thread}/?at={item.id}#turn-{item.id}"
        assert link in page and f"/?follow={item.id}" in page
        shown = client.get(link.split("#")[0])
        assert shown.status_code == 200 and item.prompt in shown.content.decode()
