"""Export (JSON Lines, CSV; streamed, filtered) and import (line by line, idempotent, reported)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client

from app.domain.filters import HistoryFilter
from app.domain.interaction import STATUS_ERROR, Interaction, Scope
from app.domain.search import parse_query
from app.errors import IMPORT_NO_FILE
from app.services import history, history_import
from app.services.history_import import import_jsonl
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY

pytestmark = pytest.mark.usefixtures("store_settings")
BASE = datetime(2026, 2, 1, tzinfo=UTC)
ALICE = Scope(session_id="alice")


def seed(scope: Scope, prompts: list[str], **fields: object) -> list[Interaction]:
    items = [
        Interaction(
            prompt=prompt,
            output=f"answer to {prompt}",
            model="tiny",
            task="text-generation",
            params={"max_new_tokens": 8},
            prompt_tokens=3,
            output_tokens=5,
            durations_ms={"generate_ms": 12.5},
            created_at=BASE + timedelta(minutes=n),
            **scope.owner_fields(),
            **fields,  # type: ignore[arg-type]
        )
        for n, prompt in enumerate(prompts)
    ]
    get_repository().import_batch(items)
    return items


def body(response: StreamingHttpResponse) -> str:
    return b"".join(response.streaming_content).decode()  # type: ignore[arg-type]


def visitor_scope_of(client: Client) -> Scope:
    client.get("/history/")
    return Scope(session_id=str(client.session[VISITOR_KEY]))


def test_jsonl_export_is_streamed_as_an_attachment(client: Client) -> None:
    seed(visitor_scope_of(client), ["one", "two"])
    response = client.get("/history/export.jsonl")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"] == 'attachment; filename="history.jsonl"'
    records = [json.loads(line) for line in body(response).splitlines()]
    assert [r["prompt"] for r in records] == ["two", "one"]
    assert records[0]["created_at"] == "2026-02-01T00:01:00.000Z"
    assert records[0]["tokens"] == {"prompt": 3, "output": 5}


def test_export_respects_the_search_and_filters(client: Client) -> None:
    scope = visitor_scope_of(client)
    seed(scope, ["capital of France", "capital of Spain"])
    seed(scope, ["capital of Peru"], status=STATUS_ERROR)
    lines = body(client.get("/history/export.jsonl?q=capital&status=ok")).splitlines()
    assert sorted(json.loads(line)["prompt"] for line in lines) == ["capital of France", "capital of Spain"]


def test_csv_export_has_a_header_and_neutralizes_formulas(client: Client) -> None:
    seed(visitor_scope_of(client), ['=HYPERLINK("http://x")', "plain, with comma"])
    rows = list(csv.reader(io.StringIO(body(client.get("/history/export.csv")))))
    assert rows[0] == list(history.CSV_COLUMNS)
    assert rows[1][5] == "plain, with comma"
    assert rows[2][5] == '\'=HYPERLINK("http://x")'


def test_export_never_includes_another_visitors_interactions(client: Client, other_client: Client) -> None:
    seed(visitor_scope_of(client), ["mine"])
    visitor_scope_of(other_client)
    assert body(other_client.get("/history/export.jsonl")) == ""


def test_export_then_import_round_trips_every_field() -> None:
    original = seed(ALICE, ["first", "second"])
    exported = "".join(history.export_jsonl(scope=ALICE, filters=HistoryFilter()))
    bob = Scope(session_id="bob")
    get_repository().delete_all(scope=ALICE)
    report = import_jsonl(exported.splitlines(), scope=bob)
    assert (report.inserted, report.already_present, report.rejected) == (2, 0, [])
    restored = get_repository().get(original[0].id, scope=bob)
    assert restored == Interaction(**{**original[0].__dict__, "session_id": "bob"})


def test_importing_the_same_lines_twice_adds_nothing() -> None:
    lines = [json.dumps({"prompt": "hi", "output": "yo", "created_at": "2026-01-01T10:00:00Z"})]
    assert import_jsonl(lines, scope=ALICE).inserted == 1
    again = import_jsonl(lines, scope=ALICE)
    assert (again.inserted, again.already_present) == (0, 1)
    assert len(get_repository().page(scope=ALICE).items) == 1


def test_import_rejects_bad_lines_with_reasons_and_keeps_the_good_ones() -> None:
    good = {"prompt": "ok", "created_at": "2026-01-01T10:00:00+02:00"}
    lines = [
        json.dumps(good),
        "{not json",
        "[1, 2]",
        json.dumps({"prompt": "", "created_at": "2026-01-01"}),
        json.dumps({"prompt": "x", "created_at": "yesterday"}),
        json.dumps({"prompt": "x", "created_at": "2026-01-01T00:00:00Z", "id": "nope"}),
        json.dumps({"prompt": "x", "created_at": "2026-01-01T00:00:00Z", "status": "weird"}),
        json.dumps({"prompt": "x", "created_at": "2026-01-01T00:00:00Z", "tokens": {"prompt": -1}}),
        "",
        json.dumps(good),
        b"\xff\xfe",
    ]
    report = import_jsonl(lines, scope=ALICE)
    assert report.inserted == 1
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, history_import.REJECT_NOT_JSON),
        (3, history_import.REJECT_NOT_OBJECT),
        (4, history_import.REJECT_PROMPT),
        (5, history_import.REJECT_CREATED_AT),
        (6, history_import.REJECT_ID),
        (7, history_import.REJECT_STATUS),
        (8, history_import.REJECT_TOKENS),
        (10, history_import.REJECT_DUPLICATE_IN_FILE),
        (11, history_import.REJECT_NOT_UTF8),
    ]
    stored = get_repository().page(scope=ALICE).items[0]
    assert stored.created_at == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_imported_interactions_are_searchable() -> None:
    import_jsonl([json.dumps({"prompt": "Où est Zürich?", "created_at": "2026-01-01T00:00:00Z"})], scope=ALICE)
    found = get_repository().page(scope=ALICE, filters=HistoryFilter(search=parse_query("zuri")))
    assert [i.prompt for i in found.items] == ["Où est Zürich?"]


def test_upload_form_imports_and_reports(client: Client) -> None:
    client.get("/history/import/")
    content = "\n".join([json.dumps({"prompt": "uploaded", "created_at": "2026-01-01T00:00:00Z"}), "broken"]).encode()
    response = client.post("/history/import/", {"file": SimpleUploadedFile("h.jsonl", content)})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong>1</strong> imported" in html
    assert f"<td>2</td><td>{history_import.REJECT_NOT_JSON}</td>" in html
    assert "uploaded" in client.get("/history/").content.decode()


def test_upload_without_a_file_is_a_400_with_the_message(client: Client) -> None:
    response = client.post("/history/import/", {})
    assert response.status_code == 400
    assert IMPORT_NO_FILE in response.content.decode()


def test_import_command_reports_progress_and_rejections(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(
        json.dumps({"prompt": "from a file", "created_at": "2026-01-01T00:00:00Z"}) + "\n" + "oops\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command("import_interactions", str(path), "--user-id", "42", stdout=out)
    text = out.getvalue()
    assert "Importing [" in text
    assert "line 2: not valid JSON" in text
    assert "1 imported, 0 already present, 1 rejected, of 2 lines." in text
    assert [i.prompt for i in get_repository().page(scope=Scope(session_id="x", user_id="42")).items] == ["from a file"]


def test_backfill_command_fills_old_documents() -> None:
    item = seed(ALICE, ["legacy"])[0]
    get_repository().collection.update_many({}, {"$unset": {"search_tokens": "", "search_keys": ""}})
    out = io.StringIO()
    call_command("backfill_search_tokens", stdout=out)
    assert "Backfilling [##############################] 100% 1/1" in out.getvalue()
    found = get_repository().page(scope=ALICE, filters=HistoryFilter(search=parse_query("legac")))
    assert [i.id for i in found.items] == [item.id]
