"""Pending and interrupted records on the pages: shown as generating, and Retry for an interrupted answer."""

from __future__ import annotations

import pytest
from django.test import Client

from app.domain.interaction import Interaction
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("app_settings")


def stored(client: Client, *, status: str, prompt: str, output: str = "Once upon") -> Interaction:
    client.get("/history/")
    record = Interaction(
        prompt=prompt,
        output=output,
        model="",
        task="text-generation",
        session_id=str(client.session[VISITOR_KEY]),
        status=status,
        params={"max_new_tokens": 3},
    )
    get_repository().insert(record)
    return record


def test_recent_shows_a_pending_record_as_generating(client: Client) -> None:
    record = stored(client, status="pending", prompt="Still going")
    html = client.get("/").content.decode()
    row = html[html.index(f'id="row-{record.id}"') :]
    assert 'data-status="pending"' in row[:200]
    assert "generating…" in row[: row.index("</li>")]
    assert "Retry" not in row[: row.index("</li>")]


def test_an_interrupted_answer_offers_retry_on_the_page_in_history_and_in_its_details(client: Client) -> None:
    record = stored(client, status="interrupted", prompt="Cut short")
    action = f'action="/history/{record.id}/regenerate"'
    for url in ("/", "/history/", f"/history/{record.id}/"):
        html = client.get(url).content.decode()
        assert action in html and ">Retry</button>" in html, url


def test_retry_without_javascript_answers_again_linked_to_the_interrupted_record(client: Client) -> None:
    record = stored(client, status="interrupted", prompt="Cut short")
    response = client.post(f"/history/{record.id}/regenerate")
    assert response.status_code == 303
    retried = [doc for doc in get_repository().collection.find({"regenerated_from": record.id})]
    assert len(retried) == 1 and retried[0]["status"] == "ok" and retried[0]["prompt"] == "Cut short"
    assert response["Location"] == f"/?answer={retried[0]['_id']}"


def test_stats_and_export_take_pending_and_interrupted_records(client: Client) -> None:
    stored(client, status="pending", prompt="Still going")
    stored(client, status="interrupted", prompt="Cut short")
    assert client.get("/stats/").status_code == 200
    exported = b"".join(client.get("/history/export.jsonl").streaming_content).decode()  # type: ignore[attr-defined]
    assert '"status": "pending"' in exported and '"status": "interrupted"' in exported
    assert client.get("/history/", {"status": "interrupted"}).content.decode().count("Cut short") >= 1
