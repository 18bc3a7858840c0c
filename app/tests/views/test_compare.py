"""Compare (one prompt, 2–3 models, one comparison) and diff (two stored answers): forms, service, views."""

from __future__ import annotations

import html
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import Ask, GenerationParams
from app.domain.ids import new_interaction_id
from app.domain.interaction import Interaction, Scope
from app.errors import COMPARISON_NOT_FOUND, INTERACTION_NOT_FOUND, RateLimited
from app.forms.compare import (
    DIFF_BAD_ID,
    DIFF_BOTH_FORMS,
    DIFF_MISSING,
    DIFF_PICK_COUNT,
    DIFF_TWICE,
    MODELS_TOO_FEW,
    MODELS_TOO_MANY,
    MODELS_TWICE,
    MODELS_UNKNOWN,
    ONLY_ONE_MODEL,
    CompareForm,
)
from app.services import comparisons, generation, model_registry
from app.services.mongo_repo import get_repository
from app.tests.views.test_stream import HTMX, parse_events

pytestmark = pytest.mark.usefixtures("app_settings")


@pytest.fixture(scope="session")
def second_causal_model(tiny_causal_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another offered model: a copy of the tiny causal model under another folder (another id)."""
    folder = tmp_path_factory.mktemp("tiny-llama-b") / "model"
    shutil.copytree(tiny_causal_model, folder)
    return folder


@pytest.fixture
def two_models(settings: SettingsWrapper, second_causal_model: Path, tiny_causal_model: Path) -> list[str]:
    settings.HF_MODELS = ((str(second_causal_model), "text-generation"),)
    return [str(tiny_causal_model), str(second_causal_model)]


@pytest.fixture
def three_models(settings: SettingsWrapper, two_models: list[str], tiny_t5_model: Path) -> list[str]:
    settings.HF_MODELS = (*settings.HF_MODELS, (str(tiny_t5_model), "text2text-generation"))
    return [*two_models, str(tiny_t5_model)]


@pytest.fixture(autouse=True)
def _fresh_serving_state(fresh_generation_state: None) -> Iterator[None]:
    yield
    model_registry.reset_tracker()


def post(client: Client, prompt: str, models: list[str], *, htmx: bool = False, **fields: str) -> Any:
    data: dict[str, Any] = {"prompt": prompt, "models": models, "max_new_tokens": "4", **fields}
    return client.post("/compare/", data, **(HTMX if htmx else {}))


def stored(prompt: str) -> list[dict[str, Any]]:
    return list(get_repository().collection.find({"prompt": prompt}).sort("_id", 1))


def settled(prompt: str) -> list[dict[str, Any]]:
    """The records once their final writes landed (one can wait a moment in the outbox behind another)."""
    deadline = time.monotonic() + 10
    docs = stored(prompt)
    while any(doc["status"] == "pending" for doc in docs) and time.monotonic() < deadline:
        time.sleep(0.05)
        docs = stored(prompt)
    return docs


def visitor(client: Client) -> Scope:
    client.get("/history/")
    return Scope(session_id=client.session["visitor_id"])


def seed(scope: Scope, output: str, *, prompt: str = "Seeded", model: str = "m") -> Interaction:
    interaction = Interaction(prompt=prompt, output=output, model=model, task="text-generation", **scope.owner_fields())
    get_repository().import_batch([interaction])
    return interaction


# --- The form ----------------------------------------------------------------------------------


def form_errors(data: dict[str, Any]) -> dict[str, str]:
    form = CompareForm(data)
    assert not form.is_valid()
    return form.errors_by_field()


def test_form_accepts_two_offered_models_with_shared_parameters(two_models: list[str]) -> None:
    form = CompareForm({"prompt": "  Hi  ", "models": two_models, "max_new_tokens": "5"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["models"] == two_models
    assert form.cleaned_data["prompt"] == "Hi"
    assert form.cleaned_data["params"] == GenerationParams(max_new_tokens=5)


def test_form_refuses_fewer_than_two_more_than_three_unknown_and_duplicate_models(
    two_models: list[str], three_models: list[str]
) -> None:
    one = two_models[:1]
    assert form_errors({"prompt": "x", "models": one}) == {"models": MODELS_TOO_FEW.format(minimum=2, count=1)}
    assert form_errors({"prompt": "x"}) == {"models": MODELS_TOO_FEW.format(minimum=2, count=0)}
    four = [*three_models, three_models[0]]
    assert "models" in form_errors({"prompt": "x", "models": four})  # a duplicate among them
    many = CompareForm({"prompt": "x", "models": three_models})
    assert many.is_valid(), many.errors
    assert form_errors({"prompt": "x", "models": [two_models[0], "gpt2"]}) == {
        "models": MODELS_UNKNOWN.format(model="gpt2")
    }
    assert form_errors({"prompt": "x", "models": [two_models[0], two_models[0]]}) == {
        "models": MODELS_TWICE.format(model=two_models[0])
    }


def test_form_refuses_four_distinct_models(settings: SettingsWrapper, three_models: list[str], tmp_path: Path) -> None:
    settings.HF_MODELS = (*settings.HF_MODELS, ("org/fourth", "text-generation"))
    errors = form_errors({"prompt": "x", "models": [*three_models, "org/fourth"]})
    assert errors == {"models": MODELS_TOO_MANY.format(maximum=3, count=4)}


def test_form_checks_parameters_for_every_picked_model(three_models: list[str]) -> None:
    errors = form_errors({"prompt": "x", "models": [three_models[2], three_models[0]], "num_beams": "2"})
    assert "num_beams must be 1 for text-generation models." in errors["models"]
    assert form_errors({"prompt": "", "models": three_models[:2]}) == {"prompt": "Please enter a prompt."}
    assert "max_new_tokens" in form_errors({"prompt": "x", "models": three_models[:2], "max_new_tokens": "0"})


# --- The service -------------------------------------------------------------------------------


def test_answers_of_a_comparison_share_its_id_and_are_ordinary_records(two_models: list[str]) -> None:
    scope = Scope(session_id="compare-service")
    ask = Ask(prompt="Shared id", params=GenerationParams(max_new_tokens=3))
    comparison = comparisons.start_comparison(ask, two_models, scope)
    comparison.wait(30)
    docs = settled("Shared id")
    assert [doc["model"] for doc in docs] == two_models
    assert {doc["comparison_id"] for doc in docs} == {comparison.id}
    assert {doc["status"] for doc in docs} == {"ok"}
    assert [str(doc["_id"]) for doc in docs] == [stream.id for stream in comparison.streams]
    answers = comparisons.get_comparison(scope=scope, comparison_id=comparison.id)
    assert [answer.model for answer in answers] == two_models


def test_a_comparison_of_n_models_counts_n_prompts(settings: SettingsWrapper, three_models: list[str]) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 1, 4
    scope = Scope(session_id="compare-rate")
    ask = Ask(prompt="Counted", params=GenerationParams(max_new_tokens=2))
    comparisons.start_comparison(ask, three_models, scope).wait(30)  # 3 of 4
    with pytest.raises(RateLimited):
        comparisons.start_comparison(ask, three_models[:2], scope)  # 2 more: only 1 left
    assert len(stored("Counted")) == 3  # the refused comparison stored nothing
    generation.start_stream(ask, scope).ended.wait(30)  # the last one is still there for a single prompt
    with pytest.raises(RateLimited):
        generation.start_stream(ask, scope)


def test_more_models_than_the_burst_allows_is_refused_with_the_reason(
    settings: SettingsWrapper, three_models: list[str]
) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 10, 2
    ask = Ask(prompt="Too many at once", params=GenerationParams(max_new_tokens=2))
    with pytest.raises(RateLimited, match="RATE_LIMIT_BURST"):
        comparisons.start_comparison(ask, three_models, Scope(session_id="burst"))
    assert stored("Too many at once") == []
    comparisons.start_comparison(ask, three_models[:2], Scope(session_id="burst")).wait(30)  # 2 fit
    assert len(settled("Too many at once")) == 2


def test_another_visitors_comparison_is_not_found(two_models: list[str]) -> None:
    ask = Ask(prompt="Mine", params=GenerationParams(max_new_tokens=2))
    comparison = comparisons.start_comparison(ask, two_models, Scope(session_id="owner"))
    comparison.wait(30)
    with pytest.raises(Exception, match=COMPARISON_NOT_FOUND):
        comparisons.get_comparison(scope=Scope(session_id="someone-else"), comparison_id=comparison.id)


# --- Compare views -----------------------------------------------------------------------------


def test_compare_page_offers_the_models_and_prechecks_two(client: Client, three_models: list[str]) -> None:
    page = client.get("/compare/").content.decode()
    for model in three_models:
        assert f'value="{model}"' in page
    assert page.count(" checked>") == 2
    assert "data-submit-on-ctrl-enter" in page


def test_with_one_offered_model_the_page_says_how_to_offer_more(client: Client, tiny_causal_model: Path) -> None:
    response = client.get("/compare/")
    assert response.status_code == 200
    text = html.unescape(response.content.decode())
    assert ONLY_ONE_MODEL.split("(")[0] in text and "HF_MODELS" in text
    refused = post(client, "x", [str(tiny_causal_model)])
    assert refused.status_code == 422
    assert "HF_MODELS" in html.unescape(refused.content.decode())


def test_no_js_compare_waits_and_redirects_to_the_stored_comparison(client: Client, two_models: list[str]) -> None:
    response = post(client, "Without JS", two_models)
    assert response.status_code == 303
    cid = re.fullmatch(r"/compare/([0-9a-f]{24})/", response["Location"])
    assert cid is not None
    docs = settled("Without JS")
    assert len(docs) == 2 and {doc["comparison_id"] for doc in docs} == {cid.group(1)}
    assert all(doc["status"] == "ok" for doc in docs)
    page = client.get(response["Location"])
    assert page.status_code == 200
    body = page.content.decode()
    for doc in docs:
        assert f'data-interaction-id="{doc["_id"]}"' in body
    assert body.count("Diff these two") == 1
    assert f"/diff/?a={docs[0]['_id']}&amp;b={docs[1]['_id']}" in body
    assert "tokens" in body and "ms generating" in body


def test_htmx_compare_returns_one_streaming_column_per_model(client: Client, two_models: list[str]) -> None:
    response = post(client, "With htmx", two_models, htmx=True)
    assert response.status_code == 200
    cid = stored("With htmx")[0]["comparison_id"]
    assert response["HX-Push-Url"] == f"/compare/{cid}/"
    body = response.content.decode()
    ids = re.findall(r'data-stream-id="([0-9a-f]{24})"', body)
    assert ids == [str(doc["_id"]) for doc in stored("With htmx")]
    assert "Stop all" in body
    for sid in ids:
        events = list(parse_events(client.get(f"/compare/stream/{sid}/events")))
        kind, data = events[-1]
        assert kind == "done"
        assert f'data-interaction-id="{sid}"' in data and "compare-column" in data
    assert {doc["status"] for doc in settled("With htmx")} == {"ok"}


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (lambda m: m[:1], MODELS_TOO_FEW.format(minimum=2, count=1)),
        (lambda m: [m[0], "<b>evil</b>"], MODELS_UNKNOWN.format(model="<b>evil</b>")),
        (lambda m: [m[0], m[0]], None),
    ],
)
def test_bad_model_picks_are_422_next_to_the_field_and_store_nothing(
    client: Client, two_models: list[str], models: Any, message: str | None
) -> None:
    for htmx in (False, True):
        response = post(client, "Refused", models(two_models), htmx=htmx)
        assert response.status_code == 422
        body = response.content.decode()
        assert 'data-field="models"' in body
        if message is not None:
            assert html.escape(message) in body
        assert "<b>evil</b>" not in body
        if htmx:
            assert response["HX-Retarget"] == "#compare-form"
    assert stored("Refused") == []


def test_compare_rate_limit_is_429_when_fewer_prompts_remain(
    client: Client, settings: SettingsWrapper, two_models: list[str]
) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 1, 3
    assert post(client, "First", two_models).status_code == 303
    refused = post(client, "Second", two_models, htmx=True)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many prompts" in refused.content.decode()
    assert stored("Second") == []


def test_comparison_page_of_another_visitor_unknown_or_malformed_is_404(
    client: Client, other_client: Client, two_models: list[str]
) -> None:
    location = post(client, "Private", two_models)["Location"]
    assert client.get(location).status_code == 200
    for response in (
        other_client.get(location),
        other_client.post(location + "stop"),
        client.get(f"/compare/{new_interaction_id()}/"),
        client.get("/compare/not-an-id/"),
    ):
        assert response.status_code == 404
        assert COMPARISON_NOT_FOUND in response.content.decode()


def test_stop_all_without_js_redirects_to_the_comparison(client: Client, two_models: list[str]) -> None:
    location = post(client, "Stop all", two_models)["Location"]
    response = client.post(location + "stop")
    assert response.status_code == 303 and response["Location"] == location
    assert {doc["status"] for doc in settled("Stop all")} == {"ok"}  # already over: nothing changed


def test_history_rows_of_a_comparison_have_a_compare_badge(client: Client, two_models: list[str]) -> None:
    location = post(client, "Badge", two_models)["Location"]
    seed(visitor(client), "alone", prompt="Not compared")
    page = client.get("/history/").content.decode()
    assert page.count(f'class="row-badge compare-badge" href="{location}"') == 2
    assert page.count('name="pick"') == 3
    detail = client.get(f"/history/{stored('Badge')[0]['_id']}/").content.decode()
    assert f'href="{location}"' in detail and "Diff with…" in detail


# --- Diff views --------------------------------------------------------------------------------


def test_diff_shows_removed_and_added_words_with_words_for_screen_readers(client: Client) -> None:
    scope = visitor(client)
    a = seed(scope, "The capital of France is Paris.", model="model-a")
    b = seed(scope, "The capital of France is Lyon.", model="model-b")
    response = client.get(f"/diff/?a={a.id}&b={b.id}")
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        '<del><span class="visually-hidden">[removed: </span>Paris<span class="visually-hidden">]</span></del>' in body
    )
    assert '<ins><span class="visually-hidden">[added: </span>Lyon<span class="visually-hidden">]</span></ins>' in body
    assert "model-a" in body and "model-b" in body
    assert re.search(r"\d+ % the same", body)
    assert f"/diff/?a={b.id}&amp;b={a.id}" in body  # swap
    side = client.get(f"/diff/?a={a.id}&b={b.id}&view=side").content.decode()
    assert 'id="diff-a"' in side and 'id="diff-b"' in side


def test_diff_accepts_the_history_checkboxes_and_the_same_id_twice(client: Client) -> None:
    scope = visitor(client)
    a, b = seed(scope, "one two"), seed(scope, "one three")
    assert client.get(f"/diff/?pick={a.id}&pick={b.id}").status_code == 200
    same = client.get(f"/diff/?a={a.id}&b={a.id}")
    assert same.status_code == 200
    assert "identical (100 % the same)" in same.content.decode()


def test_diff_escapes_hostile_html_in_answers(client: Client) -> None:
    scope = visitor(client)
    a = seed(scope, "safe <b>bold</b>", prompt='<img src=x onerror="alert(1)">')
    b = seed(scope, '<script>alert("x")</script> safe')
    body = client.get(f"/diff/?a={a.id}&b={b.id}").content.decode()
    assert "<script>alert" not in body and "<b>bold</b>" not in body and "<img src=x" not in body
    assert "alert(&quot;x&quot;)&lt;/script&gt;" in body and "&lt;b&gt;" not in body  # "<" is shared: own segment
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body  # the prompt, as text


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, DIFF_MISSING),
        ("?a=", 400, DIFF_MISSING),
        ("?a={a}", 400, DIFF_MISSING),
        ("?a=nothex&b={a}", 422, DIFF_BAD_ID.format(name="a")),
        ("?a={a}&b=%3Cscript%3E", 422, DIFF_BAD_ID.format(name="b")),
        ("?a={a}&a={a}&b={a}", 422, DIFF_TWICE.format(name="a", count=2)),
        ("?pick={a}", 422, DIFF_PICK_COUNT.format(count=1)),
        ("?pick={a}&pick={a}&pick={a}", 422, DIFF_PICK_COUNT.format(count=3)),
        ("?a={a}&pick={a}", 422, DIFF_BOTH_FORMS),
    ],
)
def test_diff_with_missing_or_malformed_params_says_what_to_send(
    client: Client, query: str, status: int, message: str
) -> None:
    a = seed(visitor(client), "x")
    response = client.get("/diff/" + query.format(a=a.id))
    assert response.status_code == status
    assert html.escape(message) in response.content.decode()


def test_diff_of_another_visitors_or_an_unknown_answer_is_404_and_changes_nothing(
    client: Client, other_client: Client
) -> None:
    mine = seed(visitor(client), "mine")
    theirs = seed(visitor(other_client), "theirs")
    before = list(get_repository().collection.find({}, {"search_tokens": 0}).sort("_id", 1))
    for query in (
        f"?a={mine.id}&b={theirs.id}",
        f"?a={theirs.id}&b={mine.id}",
        f"?pick={mine.id}&pick={theirs.id}",
        f"?a={mine.id}&b={new_interaction_id()}",
    ):
        response = client.get("/diff/" + query)
        assert response.status_code == 404
        assert INTERACTION_NOT_FOUND in response.content.decode()
        assert "theirs" not in response.content.decode()
    assert client.get(f"/diff/pick/?a={theirs.id}").status_code == 404
    assert list(get_repository().collection.find({}, {"search_tokens": 0}).sort("_id", 1)) == before


def test_diff_with_lists_the_visitors_other_answers(client: Client, other_client: Client) -> None:
    scope = visitor(client)
    a, b = seed(scope, "first", prompt="Pick me A"), seed(scope, "second", prompt="Pick me B")
    seed(visitor(other_client), "x", prompt="Not yours")
    body = client.get(f"/diff/pick/?a={a.id}").content.decode()
    assert f"/diff/?a={a.id}&amp;b={b.id}" in body
    assert "Not yours" not in body
    assert client.get("/diff/pick/").status_code == 404
