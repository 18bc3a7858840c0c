"""The OpenAI-compatible API at /v1, driven by the official ``openai`` SDK against the live app.

Each call is then looked up where a person would find it: the key's history (``GET /api/interactions``
with the same key), or the bound user's history in the browser. Hand-written HTTP is used only for
what the SDK cannot send (junk bodies, wrong content types, a dropped connection).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import ChatTurn, join_turns
from app.domain.interaction import Interaction
from app.domain.stops import StopFilter, truncate_at_stop, unsafe_tail
from app.services import answer_cache, rate_limit
from app.services.model_registry import service_for
from app.services.mongo_documents import from_document, to_document
from app.services.mongo_repo import get_repository
from app.services.openai.errors import NO_USER_MESSAGE, ONLY_N_1, OpenAIError
from app.services.openai.requests import parse_chat_request
from django_hf_ml.api_keys import parse_api_keys

pytestmark = pytest.mark.usefixtures("app_settings")

SDK_TOKEN = "sdk-token-" + "a" * 32
ALICE_TOKEN = "alice-token-" + "b" * 32
UNNAMED_TOKEN = "unnamed-token-" + "c" * 32


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    rate_limit.reset_rate_limits()
    answer_cache.reset_cache()
    yield
    rate_limit.reset_rate_limits()
    answer_cache.reset_cache()


@pytest.fixture
def keys(settings: SettingsWrapper) -> SettingsWrapper:
    settings.API_TOKENS = (f"sdk@{SDK_TOKEN}", f"laptop:alice@{ALICE_TOKEN}", UNNAMED_TOKEN)
    return settings


@pytest.fixture
def model(settings: SettingsWrapper) -> str:
    return str(settings.HF_MODEL)


@pytest.fixture
def base_url(live_server: Any) -> str:
    return f"{live_server.url}/v1"


@pytest.fixture
def sdk_client(base_url: str) -> Iterator[Any]:
    """Makes SDK clients for the live server and closes them afterwards (no keep-alive outlives a test)."""
    made: list[openai.OpenAI] = []

    def make(api_key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=60))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def sdk(keys: SettingsWrapper, sdk_client: Any) -> openai.OpenAI:
    client: openai.OpenAI = sdk_client(SDK_TOKEN)
    return client


def key_history(token: str) -> list[dict[str, Any]]:
    """The key's history through the JSON API, newest first."""
    response = Client().get("/api/interactions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_for_record(predicate: Any, *, seconds: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for document in get_repository().collection.find({}):
            if predicate(document):
                return document
        time.sleep(0.1)
    raise AssertionError("no matching record was written")


# --- models ---------------------------------------------------------------------------------------


def test_models_list_names_the_offered_models(sdk: openai.OpenAI, model: str) -> None:
    listed = sdk.models.list()
    assert [item.id for item in listed.data] == [model]
    assert listed.data[0].object == "model"
    assert sdk.models.retrieve(model).id == model


def test_unknown_model_is_not_found(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-4o")


# --- chat completions -----------------------------------------------------------------------------


def test_chat_completion_is_answered_and_kept_in_the_keys_history(sdk: openai.OpenAI, model: str) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Germany?"},
    ]
    completion = sdk.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, user="u-42")
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == model
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    [item] = key_history(SDK_TOKEN)
    assert item["id"] == completion.id.removeprefix("chatcmpl-")
    assert item["prompt"] == "And of Germany?"
    assert item["output"] == choice.message.content
    assert item["source"] == "api"
    assert item["api_key"] == "sdk"
    assert item["messages"] == messages
    stored = get_repository().collection.find_one({})
    assert stored is not None and stored["end_user"] == "u-42" and stored["finish_reason"] == choice.finish_reason


def test_multi_turn_reaches_the_model_through_its_chat_template(sdk: openai.OpenAI, model: str) -> None:
    one_turn = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello world!"}], max_tokens=8, temperature=0
    )
    with_history = sdk.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Seven zebras quietly jogged past the frozen lake."},
            {"role": "user", "content": "Hello world!"},
        ],
        max_tokens=8,
        temperature=0,
    )
    assert one_turn.usage is not None and with_history.usage is not None
    assert with_history.usage.prompt_tokens > one_turn.usage.prompt_tokens  # the system turn was encoded too


def test_streaming_chat_with_usage_matches_the_record(sdk: openai.OpenAI, model: str) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me about the sea."}],
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    [item] = key_history(SDK_TOKEN)
    assert item["output"] == text
    assert item["source"] == "api" and item["status"] == "ok"
    assert chunks[-1].usage.completion_tokens == item["tokens"]["output"]


def test_stream_without_include_usage_has_no_usage_chunk(sdk: openai.OpenAI, model: str) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, stream=True, seed=7
        )
    )
    assert chunks and all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_async_client_answers_and_streams(keys: SettingsWrapper, base_url: str, model: str) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(api_key=SDK_TOKEN, base_url=base_url, max_retries=0) as client:
            answer = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hello async"}], max_tokens=4, temperature=0
            )
            stream = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Hello async stream"}],
                max_tokens=4,
                temperature=0,
                stream=True,
            )
            streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            return answer.choices[0].message.content or "", streamed

    # Its own thread and event loop: Playwright's sync API may already run a loop in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer, streamed = pool.submit(asyncio.run, run()).result(timeout=120)
    outputs = {item["prompt"]: item["output"] for item in key_history(SDK_TOKEN)}
    assert outputs == {"Hello async": answer, "Hello async stream": streamed}


def test_conversation_the_chat_template_refuses_is_a_bad_request(sdk: openai.OpenAI, model: str) -> None:
    service = service_for(model)
    service.warm_up()  # type: ignore[attr-defined]
    tokenizer = service.loaded_model().tokenizer  # type: ignore[attr-defined]
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System turns are not supported') }}{% endif %}"
        + tokenizer.chat_template
    )
    refused: list[Any] = [{"role": "system", "content": "x"}, {"role": "user", "content": "refuse me"}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=refused, max_tokens=2)
    assert "System turns are not supported" in caught.value.message
    with pytest.raises(openai.APIError) as streamed:
        list(sdk.chat.completions.create(model=model, messages=refused, max_tokens=2, stream=True))
    assert "System turns are not supported" in streamed.value.message
    answered = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "fine"}], max_tokens=2)
    assert answered.choices[0].message.role == "assistant"


def test_seq2seq_model_gets_the_conversation_as_joined_turns(
    sdk: openai.OpenAI, settings: SettingsWrapper, tiny_t5_model: Any
) -> None:
    t5 = str(tiny_t5_model)
    settings.HF_MODELS = ((t5, "text2text-generation"),)
    assert t5 in [item.id for item in sdk.models.list().data]
    question: dict[str, Any] = {"role": "user", "content": "Translate English to German: the house"}
    turns: list[Any] = [{"role": "system", "content": "Be brief."}, question]
    alone = sdk.chat.completions.create(model=t5, messages=[question], max_tokens=3, temperature=0)
    joined = sdk.chat.completions.create(model=t5, messages=turns, max_tokens=3, temperature=0)
    assert alone.usage is not None and joined.usage is not None
    assert joined.usage.prompt_tokens > alone.usage.prompt_tokens
    assert (
        join_turns([ChatTurn("system", "Be brief."), ChatTurn("user", "Hi")])
        == "system: Be brief.\nuser: Hi\nassistant:"
    )
    assert join_turns([ChatTurn("user", "Hi")]) == "Hi"


def test_stream_that_fails_after_it_started_ends_with_an_error_event(
    sdk: openai.OpenAI, settings: SettingsWrapper, tmp_path: Any
) -> None:
    settings.HF_MODEL = str(tmp_path / "missing-model")
    stream = sdk.chat.completions.create(
        model=settings.HF_MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "could not be loaded" in caught.value.message
    record = wait_for_record(lambda doc: doc.get("prompt") == "Hi")
    assert record["status"] == "error" and record["source"] == "api"


# --- completions ----------------------------------------------------------------------------------


def test_completions_answer_and_stream(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.completions.create(model=model, prompt="The quick brown fox", max_tokens=4, temperature=0)
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.choices[0].finish_reason in ("stop", "length")
    streamed = list(
        sdk.completions.create(model=model, prompt="The lazy dog", max_tokens=4, temperature=0, stream=True)
    )
    assert {chunk.object for chunk in streamed} == {"text_completion"}
    text = "".join(chunk.choices[0].text for chunk in streamed)
    outputs = {item["prompt"]: (item["output"], item["messages"]) for item in key_history(SDK_TOKEN)}
    assert outputs == {"The quick brown fox": (completion.choices[0].text, None), "The lazy dog": (text, None)}


# --- stop sequences ---------------------------------------------------------------------------------


def test_stop_sequence_cuts_the_answer_and_the_record(sdk: openai.OpenAI, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "Numbers such as 1, 2, 3"}]
    full = sdk.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
    text = full.choices[0].message.content or ""
    if len(text) < 4:
        pytest.skip("the tiny model answered too briefly to pick a stop string")
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    expected = text[: text.find(stop)]
    cut = sdk.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop"
    chunks = list(
        sdk.chat.completions.create(
            model=model, messages=messages, max_tokens=12, temperature=0, stop=stop, stream=True
        )
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"
    records = [item for item in key_history(SDK_TOKEN) if item["params"].get("stop") == [stop]]
    assert [item["output"] for item in records] == [expected, expected]


def test_truncate_at_stop_cuts_before_the_earliest_stop() -> None:
    assert truncate_at_stop("one. two! three", ["!", "."]) == ("one", True)
    assert truncate_at_stop("no stops here", ["###"]) == ("no stops here", False)
    assert truncate_at_stop("abc", []) == ("abc", False)


def test_stop_filter_never_sends_a_stop_string_split_across_deltas() -> None:
    stops = StopFilter(["END"])
    sent = [stops.feed(piece) for piece in ["hello E", "N", "D and more"]]
    assert sent == ["hello ", "", ""]
    assert stops.stopped
    assert stops.finish("hello ") == ""


def test_stop_filter_releases_held_back_text_that_was_no_stop() -> None:
    stops = StopFilter(["END"])
    assert stops.feed("bE") == "b"
    assert stops.feed("x") == "Ex"
    assert stops.finish("bExy") == "y"
    assert unsafe_tail("abcEN", ["END"]) == 2


# --- errors -----------------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_an_authentication_error(keys: SettingsWrapper, sdk_client: Any) -> None:
    wrong = sdk_client("not-a-key-" + "z" * 30)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.response.headers["WWW-Authenticate"] == 'Bearer realm="v1"'
    response = Client().get("/v1/models")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_n_other_than_one_is_a_bad_request_naming_n(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], n=2)
    assert caught.value.param == "n"
    assert caught.value.message.endswith(ONLY_N_1) or ONLY_N_1 in caught.value.message


def test_unknown_role_and_empty_messages_are_bad_requests(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}])
    assert caught.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[])
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "system", "content": "only a system turn"}])
    assert NO_USER_MESSAGE in caught.value.message
    assert get_repository().collection.count_documents({}) == 0


def test_rate_limit_is_a_rate_limit_error_with_retry_after(
    sdk: openai.OpenAI, model: str, settings: SettingsWrapper
) -> None:
    settings.RATE_LIMIT_PER_MINUTE = 1
    settings.RATE_LIMIT_BURST = 1
    sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "first"}], max_tokens=2)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "second"}], max_tokens=2)
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    assert caught.value.code == "rate_limit_exceeded"


def test_model_that_cannot_load_is_503(sdk: openai.OpenAI, settings: SettingsWrapper, tmp_path: Any) -> None:
    settings.HF_MODEL = str(tmp_path / "missing-model")
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model=settings.HF_MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 503
    assert caught.value.code == "engine_unavailable"


def test_bad_json_wrong_content_type_and_huge_body(keys: SettingsWrapper) -> None:
    client, auth = Client(), {"Authorization": f"Bearer {SDK_TOKEN}"}
    bad = client.post("/v1/chat/completions", "{not json", content_type="application/json", headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    form = client.post("/v1/chat/completions", {"model": "x"}, headers=auth)
    assert form.status_code == 415
    huge = json.dumps({"model": "x", "messages": [{"role": "user", "content": "x" * 3_000_000}]})
    assert client.post("/v1/completions", huge, content_type="application/json", headers=auth).status_code == 413
    assert client.get("/v1/chat/completions", headers=auth).status_code == 405
    assert client.get("/v1/nothing/here", headers=auth).json()["error"]["code"] == "unknown_url"


# --- keys, users and the local default ------------------------------------------------------------------


def test_key_bound_to_a_user_lands_in_that_users_history(
    keys: SettingsWrapper, sdk_client: Any, model: str, django_user_model: type[User]
) -> None:
    alice = django_user_model.objects.create_user(username="alice", password="pw-alice-123")
    laptop = sdk_client(ALICE_TOKEN)
    messages: list[Any] = [
        {"role": "system", "content": "Be <brief>."},
        {"role": "user", "content": "From my laptop"},
    ]
    laptop.chat.completions.create(model=model, messages=messages, max_tokens=2)
    browser = Client()
    browser.force_login(alice)
    page = browser.get("/history/").content.decode()
    assert "From my laptop" in page and "API (laptop)" in page
    [item] = browser.get("/api/interactions").json()["items"]
    assert item["api_key"] == "laptop" and item["source"] == "api"
    detail = browser.get(f"/history/{item['id']}/").content.decode()
    assert "Conversation" in detail and "Be &lt;brief&gt;." in detail and "key laptop" in detail


def test_key_bound_to_a_missing_user_is_refused(keys: SettingsWrapper, sdk_client: Any) -> None:
    laptop = sdk_client(ALICE_TOKEN)
    with pytest.raises(openai.AuthenticationError):
        laptop.models.list()


def test_without_keys_only_local_unproxied_clients_are_served(
    settings: SettingsWrapper, sdk_client: Any, model: str
) -> None:
    settings.API_TOKENS = ()
    local = sdk_client("anything")
    answer = local.chat.completions.create(model=model, messages=[{"role": "user", "content": "local"}], max_tokens=2)
    assert answer.choices[0].message.role == "assistant"
    proxied = Client().get("/v1/models", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403 and proxied.json()["error"]["code"] == "local_only"
    remote = Client(REMOTE_ADDR="203.0.113.9").get("/v1/models")
    assert remote.status_code == 403


def test_api_token_syntax_is_validated_without_showing_the_token() -> None:
    parsed = parse_api_keys("API_TOKENS", [f"ci@{SDK_TOKEN}", f"laptop:alice@example.com@{ALICE_TOKEN}", UNNAMED_TOKEN])
    assert [(key.name, key.username) for key in parsed] == [("ci", None), ("laptop", "alice@example.com"), (None, None)]
    assert SDK_TOKEN not in repr(parsed)
    for entry, fragment in [
        ("bad name@" + SDK_TOKEN, "key name"),
        ("ci:bad user!@" + SDK_TOKEN, "username"),
        ("ci@short", "shorter than 16"),
    ]:
        with pytest.raises(ImproperlyConfigured, match=fragment) as caught:
            parse_api_keys("API_TOKENS", [entry])
        assert SDK_TOKEN not in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="more than once"):
        parse_api_keys("API_TOKENS", [f"ci@{SDK_TOKEN}", f"ci@{ALICE_TOKEN}"])


# --- the record -----------------------------------------------------------------------------------------


def test_interaction_api_fields_round_trip_and_old_documents_still_load() -> None:
    interaction = Interaction(
        prompt="p",
        output="o",
        model="m",
        task="text-generation",
        session_id="token:1",
        source="api",
        api_key="sdk",
        end_user="u",
        messages=[{"role": "user", "content": "p"}],
        finish_reason="stop",
    )
    again = from_document(to_document(interaction))
    assert again == interaction
    old = to_document(interaction)
    for name in ("source", "api_key", "end_user", "messages", "finish_reason"):
        del old[name]
    loaded = from_document(old)
    assert (loaded.source, loaded.api_key, loaded.messages, loaded.finish_reason) == (None, None, None, None)


def test_api_calls_are_searchable_and_exported(sdk: openai.OpenAI, model: str) -> None:
    sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "zebras jogged"}], max_tokens=2)
    auth = {"Authorization": f"Bearer {SDK_TOKEN}"}
    found = Client().get("/api/interactions", {"q": "zebras"}, headers=auth).json()["items"]
    assert [item["prompt"] for item in found] == ["zebras jogged"]
    exported = Client().get("/api/interactions/export.jsonl", headers=auth)
    [line] = b"".join(exported.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
    record = json.loads(line)
    assert (record["source"], record["api_key"]) == ("api", "sdk")
    assert record["messages"] == [{"role": "user", "content": "zebras jogged"}]


def test_closed_stream_still_leaves_its_record(keys: SettingsWrapper, live_server: Any, model: str) -> None:
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    body = {"model": model, "messages": [{"role": "user", "content": "hang up on me"}], "stream": True}
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {SDK_TOKEN}"},
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")
    connection.close()
    record = wait_for_record(lambda doc: doc.get("prompt") == "hang up on me" and doc.get("status") != "pending")
    assert record["source"] == "api" and record["status"] in ("ok", "cancelled")


# --- junk -------------------------------------------------------------------------------------------------

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "", None, 3]) | JUNK},
    optional={"content": st.text(max_size=20) | JUNK},
)
FIELDS = {
    "model": st.just("MODEL") | JUNK,
    "messages": st.lists(MESSAGE, max_size=3) | JUNK,
    "prompt": st.text(max_size=20) | JUNK,
    "max_tokens": st.integers(-2, 3) | JUNK,
    "temperature": st.floats(-1, 3) | JUNK,
    "top_p": JUNK,
    "seed": st.integers() | JUNK,
    "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5) | JUNK,
    "n": JUNK,
    "stream": JUNK,
    "stream_options": JUNK,
    "user": JUNK,
}
BODIES = st.fixed_dictionaries({}, optional=FIELDS) | JUNK


@hypothesis_settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]), body=BODIES)
def test_junk_bodies_never_give_a_server_error(
    client: Client, settings: SettingsWrapper, model: str, path: str, body: Any
) -> None:
    settings.API_TOKENS = ()  # the test client is a local client: every body reaches the parser
    if isinstance(body, dict) and body.get("model") == "MODEL":
        body["model"] = model
    if isinstance(body, dict):
        body["stream"] = False if not isinstance(body.get("stream"), bool) else body["stream"]
    try:
        text = json.dumps(body, allow_nan=True)
    except (TypeError, ValueError):
        return
    response = client.post(path, text, content_type="application/json")
    assert response.status_code < 500, (body, response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_parser_refuses_wrong_types_with_the_param_named() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ]
    for payload, param in cases:
        with pytest.raises(OpenAIError) as caught:
            parse_chat_request(payload, max_chars=100)
        assert (caught.value.status, caught.value.param) == (400, param)
