"""``GET /api/interactions`` (list/search with a cursor) and ``DELETE /api/interactions/<id>``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from app.domain.filters import MAX_PAGE_SIZE
from app.domain.interaction import Interaction
from app.errors import HISTORY_BAD_DATE, HISTORY_BAD_FILTERS, HISTORY_BAD_LIMIT, INTERACTION_NOT_FOUND, INVALID_CURSOR
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("store_settings")
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def seed(client: Client, prompts: list[str], **fields: str) -> list[Interaction]:
    client.get("/api/interactions")
    session_id = str(client.session[VISITOR_KEY])
    items = [
        Interaction(
            prompt=prompt,
            output="out",
            model=fields.get("model", "tiny"),
            task=fields.get("task", "text-generation"),
            session_id=session_id,
            created_at=BASE + timedelta(minutes=n),
        )
        for n, prompt in enumerate(prompts)
    ]
    get_repository().import_batch(items)
    return items


def test_list_pages_with_next_cursor_until_the_end(client: Client) -> None:
    seed(client, [f"p{n}" for n in range(5)])
    first = client.get("/api/interactions?limit=3").json()
    assert [item["prompt"] for item in first["items"]] == ["p4", "p3", "p2"]
    second = client.get(f"/api/interactions?limit=3&cursor={first['next_cursor']}").json()
    assert [item["prompt"] for item in second["items"]] == ["p1", "p0"]
    assert second["next_cursor"] is None


def test_list_searches_and_filters(client: Client) -> None:
    seed(client, ["capital of France", "capital of Spain"], model="a")
    seed(client, ["capital of Italy"], model="b")
    body = client.get("/api/interactions?q=capital+fr&model=a").json()
    assert [item["prompt"] for item in body["items"]] == ["capital of France"]


def test_list_filters_by_date_range(client: Client) -> None:
    seed(client, ["old"])
    assert client.get("/api/interactions?since=2026-03-02").json()["items"] == []
    assert len(client.get("/api/interactions?until=2026-03-01T00:30:00Z").json()["items"]) == 1


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("limit=0", "limit", HISTORY_BAD_LIMIT.format(maximum=MAX_PAGE_SIZE)),
        ("limit=abc", "limit", HISTORY_BAD_LIMIT.format(maximum=MAX_PAGE_SIZE)),
        (f"limit={MAX_PAGE_SIZE + 1}", "limit", HISTORY_BAD_LIMIT.format(maximum=MAX_PAGE_SIZE)),
        ("cursor=garbage!", "cursor", INVALID_CURSOR),
        ("since=31/12/2025", "since", HISTORY_BAD_DATE),
        ("until=2026-13-01", "until", HISTORY_BAD_DATE),
    ],
)
def test_bad_parameters_are_400_with_a_message(client: Client, query: str, field: str, message: str) -> None:
    response = client.get(f"/api/interactions?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message, "fields": {field: message}}


def test_several_bad_parameters_name_each_field(client: Client) -> None:
    body = client.get("/api/interactions?limit=0&since=x").json()
    assert body["error"] == HISTORY_BAD_FILTERS
    assert set(body["fields"]) == {"limit", "since"}


def test_list_never_shows_another_visitors_interactions(client: Client, other_client: Client) -> None:
    seed(client, ["mine"])
    assert other_client.get("/api/interactions").json() == {"items": [], "next_cursor": None}


def test_delete_is_204_then_404(client: Client) -> None:
    item = seed(client, ["bye"])[0]
    token = client.cookies.get("csrftoken")
    headers = {"HTTP_X_CSRFTOKEN": token.value} if token else {}
    response = client.delete(f"/api/interactions/{item.id}", **headers)
    assert response.status_code == 204
    assert client.get(f"/api/interactions/{item.id}").status_code == 404
    assert client.delete(f"/api/interactions/{item.id}", **headers).json() == {"error": INTERACTION_NOT_FOUND}


def test_delete_of_another_visitors_interaction_is_404(client: Client, other_client: Client) -> None:
    item = seed(client, ["mine"])[0]
    other_client.get("/api/interactions")
    response = other_client.delete(f"/api/interactions/{item.id}")
    assert response.status_code == 404
    assert client.get(f"/api/interactions/{item.id}").status_code == 200


def test_export_endpoints_stream_the_filtered_history(client: Client) -> None:
    seed(client, ["alpha one", "beta two"])
    jsonl = b"".join(client.get("/api/interactions/export.jsonl?q=beta").streaming_content).decode()
    assert [line.count('"prompt": "beta two"') for line in jsonl.splitlines()] == [1]
    response = client.get("/api/interactions/export.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(b"".join(response.streaming_content).decode().splitlines()) == 3


def test_export_with_bad_filters_is_a_json_400(client: Client) -> None:
    response = client.get("/api/interactions/export.jsonl?since=nope")
    assert response.status_code == 400
    assert response.json()["fields"] == {"since": HISTORY_BAD_DATE}
