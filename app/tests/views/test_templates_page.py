"""Prompt templates: CRUD per owner, duplicates, foreign ids, hostile names and bodies, the JSON list."""

from __future__ import annotations

import pytest
from django.test import Client

from app.errors import TEMPLATE_BODY_UNSTORABLE, TEMPLATE_NAME_INVALID, TEMPLATE_NAME_TAKEN
from app.services.mongo_indexes import TEMPLATES_SUFFIX
from app.services.mongo_repo import get_repository

pytestmark = pytest.mark.usefixtures("store_settings")


def create(client: Client, name: str, body: str, **extra: str) -> object:
    return client.post("/templates/", {"name": name, "body": body}, **extra)  # type: ignore[arg-type]


def listed(client: Client) -> list[dict[str, object]]:
    response = client.get("/api/templates")
    assert response.status_code == 200
    return list(response.json()["templates"])


def stored_count() -> int:
    return get_repository().sibling(TEMPLATES_SUFFIX).count_documents({})


def test_create_list_edit_delete_without_javascript(client: Client) -> None:
    response = create(client, "summary", "Summarise {{ topic }} for {{audience}}.")
    assert response.status_code == 303 and response["Location"] == "/templates/"  # type: ignore[index,attr-defined]
    page = client.get("/templates/")
    html = page.content.decode()
    assert page.status_code == 200 and "Saved “/summary”." in html and "/summary" in html
    (item,) = listed(client)
    assert item["name"] == "summary" and item["variables"] == ["topic", "audience"]
    edit = client.get(f"/templates/{item['id']}/")
    assert edit.status_code == 200 and 'value="summary"' in edit.content.decode()
    saved = client.post(f"/templates/{item['id']}/", {"name": "short", "body": "Short {{x}}"})
    assert saved.status_code == 303
    assert [(t["name"], t["body"]) for t in listed(client)] == [("short", "Short {{x}}")]
    assert client.post(f"/templates/{item['id']}/delete").status_code == 303
    assert listed(client) == []


def test_htmx_create_swaps_the_manager(client: Client) -> None:
    response = create(client, "greet", "Hello {{name}}", HTTP_HX_REQUEST="true")
    html = response.content.decode()  # type: ignore[attr-defined]
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert html.lstrip().startswith('<div id="templates-manager"') and "/greet" in html


def test_duplicate_name_is_a_422_on_the_name_field(client: Client) -> None:
    create(client, "greet", "Hello {{name}}")
    response = create(client, "greet", "Another", HTTP_HX_REQUEST="true")
    html = response.content.decode()  # type: ignore[attr-defined]
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert response["HX-Retarget"] == "#template-create"  # type: ignore[index]
    assert TEMPLATE_NAME_TAKEN.format(name="greet") in html
    assert 'data-field="name"' in html and "Another" in html  # what was typed is kept
    api = client.post("/api/templates", {"name": "greet", "body": "x"}, content_type="application/json")
    assert api.status_code == 422 and api.json()["fields"] == {"name": TEMPLATE_NAME_TAKEN.format(name="greet")}
    (only,) = listed(client)
    assert only["body"] == "Hello {{name}}"
    other = create(client, "other", "x")
    assert other.status_code == 303  # type: ignore[attr-defined]
    other_id = next(t["id"] for t in listed(client) if t["name"] == "other")
    rename = client.post(f"/templates/{other_id}/", {"name": "greet", "body": "x"})
    assert rename.status_code == 422 and TEMPLATE_NAME_TAKEN.format(name="greet") in rename.content.decode()


@pytest.mark.parametrize(
    ("name", "body", "field", "message"),
    [
        ("Bad Name", "x", "name", TEMPLATE_NAME_INVALID),
        ("<script>alert(1)</script>", "x", "name", TEMPLATE_NAME_INVALID),
        ("../../etc", "x", "name", TEMPLATE_NAME_INVALID),
        ("a" * 41, "x", "name", TEMPLATE_NAME_INVALID),
        ("nul\x00", "x", "name", TEMPLATE_NAME_INVALID),
        ("ok", "Hello {{name", "body", "is never closed"),
        ("ok", "stray }} here", "body", "closes nothing"),
        ("ok", "{{}}", "body", "has no variable name"),
        ("ok", "{{ {{x}} }}", "body", "A brace inside"),
        ("ok", "{{9lives}}", "body", "is not a variable name"),
        ("ok", "a\x00b", "body", TEMPLATE_BODY_UNSTORABLE),
        ("ok", "", "body", "Please enter the template text."),
        ("ok", "x" * 4001, "body", "at most 4000 characters"),
    ],
)
def test_bad_input_is_a_422_with_the_message_and_stores_nothing(
    client: Client, name: str, body: str, field: str, message: str
) -> None:
    create(client, "keep", "Kept {{as_is}}")
    response = create(client, name, body)
    html = response.content.decode()  # type: ignore[attr-defined]
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert f'data-field="{field}"' in html
    assert message.replace("“", "&ldquo;")[:20] in html or message[:20] in html
    assert "<script>alert" not in html
    assert [(t["name"], t["body"]) for t in listed(client)] == [("keep", "Kept {{as_is}}")]
    api = client.post("/api/templates", {"name": name, "body": body}, content_type="application/json")
    assert api.status_code == 422 and field in api.json()["fields"]


def test_lone_surrogates_through_the_api_are_a_422(client: Client) -> None:
    raw = '{"name": "ok", "body": "bad \\ud800 text"}'
    response = client.post("/api/templates", raw, content_type="application/json")
    assert response.status_code == 422 and response.json()["fields"] == {"body": TEMPLATE_BODY_UNSTORABLE}
    response = client.post("/api/templates", '{"name": "ok\\udfff", "body": "x"}', content_type="application/json")
    assert response.status_code == 422 and "name" in response.json()["fields"]
    assert client.post("/api/templates", '{"name": 1, "body": "x"}', content_type="application/json").status_code == 422
    assert stored_count() == 0


def test_html_in_a_body_is_stored_as_text_and_escaped(client: Client) -> None:
    create(client, "xss", '<img src=x onerror="alert(1)"> {{who}}')
    html = client.get("/templates/").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert listed(client)[0]["body"] == '<img src=x onerror="alert(1)"> {{who}}'


def test_another_visitors_template_is_a_404_everywhere(client: Client, other_client: Client) -> None:
    create(client, "mine", "Mine {{x}}")
    (item,) = listed(client)
    tid = item["id"]
    assert listed(other_client) == []
    assert other_client.get(f"/templates/{tid}/").status_code == 404
    assert other_client.get(f"/templates/{tid}/", HTTP_HX_REQUEST="true").status_code == 404
    assert other_client.post(f"/templates/{tid}/", {"name": "stolen", "body": "x"}).status_code == 404
    assert other_client.post(f"/templates/{tid}/", {"name": "Bad Name", "body": "x"}).status_code == 404
    assert other_client.post(f"/templates/{tid}/delete").status_code == 404
    assert other_client.get(f"/api/templates/{tid}").status_code == 404
    assert other_client.delete(f"/api/templates/{tid}").status_code == 404
    put = other_client.put(f"/api/templates/{tid}", {"name": "x", "body": "y"}, content_type="application/json")
    assert put.status_code == 404
    assert other_client.put(f"/api/templates/{tid}", "not json", content_type="text/plain").status_code == 404
    for bad in ("nothex", "0" * 24, "zz" * 12):
        assert client.get(f"/templates/{bad}/").status_code == 404
        assert client.get(f"/api/templates/{bad}").status_code == 404
    assert [(t["name"], t["body"]) for t in listed(client)] == [("mine", "Mine {{x}}")]
    assert create(other_client, "mine", "Theirs").status_code == 303  # type: ignore[attr-defined]
    assert [t["body"] for t in listed(other_client)] == ["Theirs"]


def test_json_api_crud(client: Client) -> None:
    created = client.post("/api/templates", {"name": "a", "body": "A {{x}}"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["variables"] == ["x"]
    tid = created.json()["id"]
    put = client.put(f"/api/templates/{tid}", {"name": "b", "body": "B"}, content_type="application/json")
    assert put.status_code == 200 and put.json()["name"] == "b"
    assert client.get(f"/api/templates/{tid}").json()["body"] == "B"
    assert client.delete(f"/api/templates/{tid}").status_code == 204
    assert client.get(f"/api/templates/{tid}").status_code == 404
