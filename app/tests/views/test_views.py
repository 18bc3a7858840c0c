"""Pages: full page vs htmx partial, 422/503 partials, no-JS POST-redirect-GET, isolation."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.errors import INTERACTION_NOT_FOUND, PROMPT_EMPTY, STORE_UNAVAILABLE
from app.services.mongo_repo import get_repository

HTMX = {"HTTP_HX_REQUEST": "true"}


def post_prompt(client: Client, prompt: str, htmx: bool = True, **params: str) -> object:
    data = {"prompt": prompt, "max_new_tokens": "4", **params}
    return client.post("/prompt/", data, **(HTMX if htmx else {}))


@pytest.mark.usefixtures("app_settings")
def test_index_renders_full_page_with_form(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert 'id="prompt-form"' in body
    assert 'hx-post="/stream/"' in body  # with JavaScript the answer streams (app/stream_views.py)
    assert 'action="/prompt/"' in body
    assert "HX-Request" in response["Vary"]


@pytest.mark.usefixtures("app_settings")
def test_htmx_submit_returns_answer_partial_and_oob_row(client: Client) -> None:
    response = post_prompt(client, "Hello there")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert 'class="answer"' in body
    assert 'hx-swap-oob="afterbegin:#recent-list"' in body
    assert "Hello there" in body
    assert "HX-Request" in response["Vary"]


@pytest.mark.usefixtures("app_settings")
def test_submitted_interaction_is_stored_for_the_visitor(client: Client) -> None:
    post_prompt(client, "Remember me")
    doc = get_repository().collection.find_one({"prompt": "Remember me"})
    assert doc is not None
    assert doc["status"] == "ok"
    assert doc["session_id"] == client.session["visitor_id"]
    assert doc["params"]["max_new_tokens"] == 4


@pytest.mark.usefixtures("app_settings")
def test_recent_list_shows_earlier_interactions(client: Client) -> None:
    post_prompt(client, "First question")
    body = client.get("/").content.decode()
    assert "First question" in body
    assert 'class="history-row"' in body


@pytest.mark.usefixtures("app_settings")
def test_no_js_submit_redirects_to_page_showing_the_answer(client: Client) -> None:
    response = post_prompt(client, "Plain form post", htmx=False)
    assert response.status_code == 303
    assert response["Location"].startswith("/?answer=")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert 'class="answer"' in page.content.decode()
    assert "Plain form post" in page.content.decode()


@pytest.mark.usefixtures("app_settings")
def test_empty_prompt_gets_422_form_partial_with_message(client: Client) -> None:
    response = post_prompt(client, "   ")
    assert response.status_code == 422
    body = response.content.decode()
    assert PROMPT_EMPTY in body
    assert 'id="prompt-form"' in body
    assert response["HX-Retarget"] == "#prompt-form"
    assert response["HX-Reswap"] == "outerHTML"


@pytest.mark.usefixtures("app_settings")
def test_out_of_range_parameter_gets_422_with_message_next_to_field(client: Client) -> None:
    response = post_prompt(client, "Hi", max_new_tokens="100000")
    assert response.status_code == 422
    assert "max_new_tokens" in response.content.decode()
    assert get_repository().collection.count_documents({}) == 0


@pytest.mark.usefixtures("app_settings")
def test_invalid_prompt_without_js_renders_full_page_422_keeping_the_text(client: Client) -> None:
    response = post_prompt(client, "x", htmx=False, temperature="hot")
    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" in body
    assert ">x</textarea>" in body


@pytest.mark.usefixtures("causal_model_settings", "unreachable_store")
def test_store_down_still_answers_and_shows_the_waiting_banner(client: Client) -> None:
    response = post_prompt(client, "Hello", htmx=False)
    assert response.status_code == 303
    page = client.get(response["Location"]).content.decode()
    assert "History unavailable — 1 interaction waiting to be saved." in page
    assert '<div class="output markdown">' in page  # the answer itself is shown from the outbox


@pytest.mark.usefixtures("store_settings")
def test_model_down_gives_503_partial_naming_the_model(
    client: Client, settings: SettingsWrapper, tmp_path: object
) -> None:
    from app.services import nlp_service

    settings.HF_MODEL = "/nonexistent/model-folder"
    settings.HF_TASK = "text-generation"
    nlp_service.reset_services()
    response = post_prompt(client, "Hello")
    nlp_service.reset_services()
    assert response.status_code == 503
    assert "/nonexistent/model-folder" in response.content.decode()
    failed = get_repository().collection.find_one({"prompt": "Hello"})
    assert failed is not None and failed["status"] == "error"


@pytest.mark.usefixtures("unreachable_store")
def test_index_still_renders_when_store_is_down(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert STORE_UNAVAILABLE in response.content.decode()


@pytest.mark.usefixtures("app_settings")
def test_detail_page_full_and_partial(client: Client) -> None:
    post_prompt(client, "Show me")
    doc = get_repository().collection.find_one({"prompt": "Show me"})
    assert doc is not None
    url = f"/history/{doc['_id']}/"
    full = client.get(url)
    assert full.status_code == 200
    assert "<html" in full.content.decode()
    partial = client.get(url, **HTMX)
    assert partial.status_code == 200
    assert "<html" not in partial.content.decode()
    assert "Show me" in partial.content.decode()


@pytest.mark.usefixtures("app_settings")
def test_other_visitor_gets_404_for_detail(client: Client, other_client: Client) -> None:
    post_prompt(client, "Private")
    doc = get_repository().collection.find_one({"prompt": "Private"})
    assert doc is not None
    response = other_client.get(f"/history/{doc['_id']}/")
    assert response.status_code == 404
    assert INTERACTION_NOT_FOUND in response.content.decode()
    assert "Private" not in response.content.decode()


@pytest.mark.usefixtures("app_settings")
def test_malformed_detail_id_is_404(client: Client) -> None:
    assert client.get("/history/not-an-id/").status_code == 404


@pytest.mark.usefixtures("app_settings")
def test_get_on_prompt_endpoint_is_405(client: Client) -> None:
    assert client.get("/prompt/").status_code == 405


@pytest.mark.usefixtures("app_settings")
def test_prompt_html_is_escaped(client: Client) -> None:
    response = post_prompt(client, "<script>alert(1)</script>")
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
