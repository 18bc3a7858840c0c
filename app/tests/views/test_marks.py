"""Stars and tags: scoped, targeted updates that keep every other field, searchable, filterable, exported."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from app.domain.filters import NO_FILTER
from app.domain.interaction import STATUS_OK, STATUS_PENDING, Interaction, Scope
from app.domain.marks import STARRED_KEY
from app.errors import TAGS_TOO_MANY, InteractionNotFound
from app.services import history, history_import, marks, mongo_generation
from app.services.mongo_documents import parse_interaction_id, to_document
from app.services.mongo_marks import set_marks
from app.services.mongo_repo import get_repository
from app.services.search.service import history_search
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("store_settings")
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def scope_of(client: Client) -> Scope:
    client.get("/history/")
    return Scope(session_id=str(client.session[VISITOR_KEY]))


def seed(scope: Scope, prompts: list[str], **fields: object) -> list[Interaction]:
    items = [
        Interaction(
            prompt=prompt,
            output=f"answer about {prompt}",
            model="tiny",
            task="text-generation",
            created_at=BASE + timedelta(minutes=n),
            **scope.owner_fields(),
            **fields,  # type: ignore[arg-type]
        )
        for n, prompt in enumerate(prompts)
    ]
    get_repository().import_batch(items)
    return items


def stored(interaction_id: str) -> dict[str, object]:
    doc = get_repository().collection.find_one({"_id": parse_interaction_id(interaction_id)})
    assert doc is not None
    return doc


def without_marks(doc: dict[str, object]) -> dict[str, object]:
    keys = [key for key in doc.get("search_keys") or [] if not str(key).startswith(("g:", "f:"))]  # type: ignore[attr-defined]
    return {k: v for k, v in doc.items() if k not in ("starred", "tags", "marks_rev", "search_keys")} | {"keys": keys}


def test_star_and_tags_change_only_the_marks_and_search_keys(client: Client) -> None:
    scope = scope_of(client)
    (item,) = seed(scope, ["Capital of France"])
    before = stored(item.id)
    response = client.post(f"/history/{item.id}/star", {"starred": "1"})
    assert response.status_code == 303
    response = client.post(f"/history/{item.id}/tags", {"tags": " Geo, travel GEO "})
    assert response.status_code == 303
    after = stored(item.id)
    assert after["starred"] is True and after["tags"] == ["geo", "travel"] and after["marks_rev"] == 2
    assert {"g:geo", "g:travel", STARRED_KEY} <= set(after["search_keys"])  # type: ignore[arg-type]
    assert without_marks(after) == without_marks(before)


def test_htmx_star_returns_the_pressed_button(client: Client) -> None:
    (item,) = seed(scope_of(client), ["x"])
    response = client.post(f"/history/{item.id}/star", {"starred": "1"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'aria-pressed="true"' in html and 'name="starred" value="0"' in html and "<html" not in html


def test_no_js_redirect_goes_back_only_on_this_site(client: Client) -> None:
    (item,) = seed(scope_of(client), ["x"])
    ok = client.post(f"/history/{item.id}/star", {"starred": "1", "next": "/history/?q=x"})
    assert ok["Location"] == "/history/?q=x"
    evil = client.post(f"/history/{item.id}/star", {"starred": "0", "next": "https://evil.example/"})
    assert evil["Location"] == f"/history/{item.id}/"


@pytest.mark.parametrize("value", ["", "yes", "2", "<b>"])
def test_bad_star_value_is_a_422(client: Client, value: str) -> None:
    (item,) = seed(scope_of(client), ["x"])
    response = client.post(f"/history/{item.id}/star", {"starred": value})
    assert response.status_code == 422
    assert "starred must be 1" in response.content.decode()
    assert stored(item.id).get("starred") is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok <script>", "“&lt;script&gt;” is not a valid tag"),
        ("a.b", "“a.b” is not a valid tag"),
        ("x" * 33, "is not a valid tag"),
        (" ".join(f"t{n}" for n in range(21)), TAGS_TOO_MANY.format(limit=20)),
        ("a\x00b", "is not a valid tag"),
        ("a " * 3000, "too long"),
    ],
)
def test_bad_tags_are_a_422_and_change_nothing(client: Client, text: str, message: str) -> None:
    scope = scope_of(client)
    (item,) = seed(scope, ["x"], tags=["keep"])
    before = stored(item.id)
    response = client.post(f"/history/{item.id}/tags", {"tags": text}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert 'aria-invalid="true"' in html
    assert stored(item.id) == before


def test_another_visitors_interaction_is_a_404_for_star_and_tags(client: Client, other_client: Client) -> None:
    (item,) = seed(scope_of(client), ["mine"])
    scope_of(other_client)
    for path, data in ((f"/history/{item.id}/star", {"starred": "1"}), (f"/history/{item.id}/tags", {"tags": "x"})):
        assert other_client.post(path, data).status_code == 404
        assert other_client.post(path, data, HTTP_HX_REQUEST="true").status_code == 404
    bad_tags = other_client.post(f"/history/{item.id}/tags", {"tags": "<bad>"})
    assert bad_tags.status_code == 404  # a foreign id is not found before the tags are judged
    assert other_client.post(f"/history/{item.id}/star", {"starred": "bogus"}).status_code == 404
    assert other_client.post(f"/api/interactions/{item.id}/marks", "x", content_type="text/plain").status_code == 404
    assert other_client.post("/history/nothex/star", {"starred": "1"}).status_code == 404
    doc = stored(item.id)
    assert doc.get("starred") is False and doc.get("tags") == []


def test_a_deleted_interaction_cannot_be_marked(client: Client) -> None:
    scope = scope_of(client)
    (item,) = seed(scope, ["gone"])
    history.delete_interaction(scope=scope, interaction_id=item.id)
    with pytest.raises(InteractionNotFound):
        marks.set_star(scope=scope, interaction_id=item.id, starred=True)


def test_tag_search_and_history_filters(client: Client) -> None:
    scope = scope_of(client)
    first, second, third = seed(scope, ["alpha one", "beta two", "gamma three"])
    marks.set_tags(scope=scope, interaction_id=first.id, text="geo")
    marks.set_tags(scope=scope, interaction_id=second.id, text="geo todo")
    marks.set_star(scope=scope, interaction_id=second.id, starred=True)
    marks.set_star(scope=scope, interaction_id=third.id, starred=True)

    def ids(**kwargs: str) -> list[str]:
        response = client.get("/api/interactions", kwargs)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["items"]]

    assert ids(q="tag:geo") == [second.id, first.id]
    assert ids(q="tag:GEO tag:todo") == [second.id]
    assert ids(q="tag:geo beta") == [second.id]
    assert ids(starred="1") == [third.id, second.id]
    assert ids(starred="1", tag="geo") == [second.id]
    assert ids(tag="Todo") == [second.id]
    assert ids(q="tag:nothing") == []
    page = client.get("/history/?starred=1&tag=geo")
    html = page.content.decode()
    assert page.status_code == 200
    assert "beta two" in html and "alpha one" not in html and "gamma three" not in html
    assert re.search(r'id="history-starred" name="starred" value="1" checked', html)
    assert '<option value="geo" selected>geo (2)</option>' in html
    assert client.get("/history/?tag=<b>").status_code == 400
    found = history_search(scope=scope, filters=NO_FILTER, text="tag:todo", cursor=None)
    assert [row.interaction.id for row in found.rows] == [second.id]


def test_export_and_import_keep_stars_and_tags(client: Client, other_client: Client) -> None:
    scope = scope_of(client)
    (item,) = seed(scope, ["exported"])
    marks.set_star(scope=scope, interaction_id=item.id, starred=True)
    marks.set_tags(scope=scope, interaction_id=item.id, text="geo travel")
    lines = "".join(history.export_jsonl(scope=scope, filters=NO_FILTER))
    record = json.loads(lines)
    assert record["starred"] is True and record["tags"] == ["geo", "travel"]
    csv_text = "".join(history.export_csv(scope=scope, filters=NO_FILTER))
    assert csv_text.splitlines()[0].endswith(",starred,tags")
    assert csv_text.splitlines()[1].endswith(",True,geo travel")
    other = scope_of(other_client)
    report = history_import.import_jsonl([lines.replace(item.id, "a" * 24)], scope=other)
    assert report.inserted == 1
    imported = get_repository().get("a" * 24, scope=other)
    assert imported.starred is True and imported.tags == ["geo", "travel"]
    assert [
        row.interaction.id
        for row in history_search(scope=other, filters=NO_FILTER, text="tag:travel", cursor=None).rows
    ] == ["a" * 24]
    bad = history_import.import_jsonl(
        [
            '{"prompt": "p", "created_at": "2026-01-01T00:00:00Z", "tags": ["<b>"]}',
            '{"prompt": "p", "created_at": "2026-01-01T00:00:00Z", "starred": "yes"}',
        ],
        scope=other,
    )
    assert [line.reason for line in bad.rejected][1] == "starred must be true or false"
    assert "is not a valid tag" in bad.rejected[0].reason


def test_marks_on_a_pending_record_survive_checkpoints_and_the_final_write(client: Client) -> None:
    scope = scope_of(client)
    repo = get_repository()
    pending = Interaction(
        prompt="long answer",
        output="",
        model="tiny",
        task="text-generation",
        status=STATUS_PENDING,
        **scope.owner_fields(),
    )
    mongo_generation.write_record(repo, pending)
    marks.set_tags(scope=scope, interaction_id=pending.id, text="later")
    mongo_generation.checkpoint(repo, pending.id, output="partial", output_tokens=1, now=BASE)
    marks.set_star(scope=scope, interaction_id=pending.id, starred=True)
    doc = stored(pending.id)
    assert doc["output"] == "partial" and doc["checkpoint"] == 1 and doc["status"] == STATUS_PENDING
    final = Interaction(**{**pending.__dict__, "status": STATUS_OK, "output": "the final answer", "checkpoint": 1})
    mongo_generation.write_record(repo, final)
    doc = stored(pending.id)
    assert doc["status"] == STATUS_OK and doc["output"] == "the final answer"
    assert doc["starred"] is True and doc["tags"] == ["later"]
    assert {"g:later", STARRED_KEY, "s:ok", "p:fin"} <= set(doc["search_keys"])  # type: ignore[arg-type]
    assert "s:pending" not in doc["search_keys"]  # type: ignore[operator]
    mongo_generation.write_record(repo, final)  # writing it twice changes nothing
    assert stored(pending.id)["tags"] == ["later"]


def test_an_unmarked_final_write_is_one_replace_as_before(client: Client) -> None:
    scope = scope_of(client)
    repo = get_repository()
    record = Interaction(prompt="p", output="o", model="tiny", task="t", **scope.owner_fields())
    mongo_generation.write_record(repo, record)
    assert stored(record.id) == to_document(record) | {"_id": parse_interaction_id(record.id)}


def test_a_mark_racing_the_final_write_keeps_both(client: Client) -> None:
    """A stale read (the mark read the pending document, then the final write landed) retries."""
    scope = scope_of(client)
    repo = get_repository()
    pending = Interaction(
        prompt="race", output="", model="tiny", task="t", status=STATUS_PENDING, **scope.owner_fields()
    )
    mongo_generation.write_record(repo, pending)
    marks.set_star(scope=scope, interaction_id=pending.id, starred=True)
    original_find_one = repo.collection.find_one
    raced = {"done": False}

    class Racing:
        def __getattr__(self, name: str) -> object:
            return getattr(repo.collection, name)

        def find_one(self, *args: object, **kwargs: object) -> object:
            doc = original_find_one(*args, **kwargs)  # type: ignore[arg-type]
            if not raced["done"]:
                raced["done"] = True
                final = Interaction(**{**pending.__dict__, "status": STATUS_OK, "output": "done now"})
                mongo_generation.write_record(repo, final)
            return doc

    class Repo:
        collection = Racing()

    set_marks(Repo(), pending.id, scope=scope, tags=["raced"])  # type: ignore[arg-type]
    doc = stored(pending.id)
    assert doc["status"] == STATUS_OK and doc["output"] == "done now"
    assert doc["starred"] is True and doc["tags"] == ["raced"]
    assert {"s:ok", "g:raced", STARRED_KEY, "p:don"} <= set(doc["search_keys"])  # type: ignore[arg-type]


def test_marks_api(client: Client, other_client: Client) -> None:
    (item,) = seed(scope_of(client), ["api"])
    url = f"/api/interactions/{item.id}/marks"
    response = client.post(url, {"starred": True, "tags": ["Geo"]}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["starred"] is True and response.json()["tags"] == ["geo"]
    bad = client.post(url, {"tags": ["a b"]}, content_type="application/json")
    assert bad.status_code == 422 and "tags" in bad.json()["fields"]
    assert client.post(url, {"starred": "yes"}, content_type="application/json").status_code == 422
    scope_of(other_client)
    assert other_client.post(url, {"starred": False}, content_type="application/json").status_code == 404
    assert client.get(f"/api/interactions/{item.id}").json()["tags"] == ["geo"]


def test_owner_tags_count_only_this_visitors_live_records(client: Client, other_client: Client) -> None:
    scope = scope_of(client)
    first, second, third = seed(scope, ["a", "b", "c"])
    marks.set_tags(scope=scope, interaction_id=first.id, text="geo todo")
    marks.set_tags(scope=scope, interaction_id=second.id, text="geo")
    marks.set_tags(scope=scope, interaction_id=third.id, text="gone")
    history.delete_interaction(scope=scope, interaction_id=third.id)
    other = scope_of(other_client)
    (theirs,) = seed(other, ["theirs"])
    marks.set_tags(scope=other, interaction_id=theirs.id, text="secret")
    assert marks.owner_tags(scope=scope) == [("geo", 2), ("todo", 1)]
    html = client.get("/history/").content.decode()
    assert "secret" not in html and '<option value="geo">geo (2)</option>' in html
