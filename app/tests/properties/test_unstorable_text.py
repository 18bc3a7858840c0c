"""No 5xx from text: a lone surrogate, NUL or any other text in a prompt never crashes an endpoint.

Every endpoint that takes a prompt — the form (``/prompt/``, ``/stream/``), ``POST /api/generate``,
``/v1/chat/completions``, ``/v1/completions`` and the JSON Lines import — gets hypothesis text that
includes unpaired surrogates and NUL. Text that cannot be stored is refused with a clear 422 (the
import reports the line as rejected); anything else is answered and stored as sent.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Scope
from app.domain.text import is_storable
from app.errors import PROMPT_UNSTORABLE
from app.services import answer_cache, rate_limit
from app.services.history_import import REJECT_UNSTORABLE, import_jsonl

pytestmark = pytest.mark.usefixtures("app_settings")

TEXT_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LONE_SURROGATE = "\ud800"
NASTY = ["\ud800", "a\udfffb", "\x00", "x\x00y", "\ud83d", "\ud83d\ude00", "\ufffe\uffff", "\u202e", "\x1b[31m"]
# Every code point, surrogates included (hypothesis leaves them out of text() by default).
any_character = st.one_of(
    st.characters(exclude_categories=()), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
)
prompts = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=any_character, min_size=1, max_size=40),
    st.tuples(st.text(max_size=10), st.sampled_from(NASTY), st.text(max_size=10)).map("".join),
)


def sent_over_json(text: str) -> str:
    """What the server decodes from ``json.dumps(text)`` (an escaped surrogate pair becomes one character)."""
    decoded: str = json.loads(json.dumps(text))
    return decoded


def wire_bytes(text: str) -> bytes:
    """``text`` as a browser form would send it; a lone surrogate goes out as its (invalid) UTF-8 bytes."""
    return text.encode("utf-8", "surrogatepass")


def assert_answered(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.content[:300]!r}"


@pytest.fixture(autouse=True)
def _fresh_limits(settings: SettingsWrapper) -> None:
    settings.HF_BATCH_WINDOW_MS = 0
    rate_limit.reset_rate_limits()
    answer_cache.reset_cache()


def post_json(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json")


def chat_body(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 1}


@pytest.fixture
def model(settings: SettingsWrapper) -> str:
    return str(settings.HF_MODEL)


def completion_body(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "prompt": text, "max_tokens": 1}


# --- one lone surrogate, every endpoint: a clear 422 ----------------------------------------------


def test_api_generate_refuses_a_lone_surrogate_with_422(client: Client) -> None:
    response = post_json(client, "/api/generate", {"prompt": f"hi {LONE_SURROGATE}", "params": {}})
    assert response.status_code == 422
    assert response.json()["fields"] == {"prompt": PROMPT_UNSTORABLE}


def test_api_generate_refuses_nul_with_422(client: Client) -> None:
    response = post_json(client, "/api/generate", {"prompt": "hi\x00there", "params": {}})
    assert response.status_code == 422
    assert response.json()["error"] == PROMPT_UNSTORABLE


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_openai_endpoints_refuse_a_lone_surrogate_with_422(client: Client, path: str, model: str) -> None:
    make = chat_body if "chat" in path else completion_body
    response = post_json(client, path, make(model, f"hi {LONE_SURROGATE}"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert PROMPT_UNSTORABLE in error["message"]
    assert error["param"] == ("messages[0].content" if "chat" in path else "prompt")


def test_openai_chat_refuses_a_surrogate_in_an_earlier_turn(client: Client, model: str) -> None:
    body = chat_body(model, "hello")
    body["messages"].insert(0, {"role": "system", "content": [{"type": "text", "text": LONE_SURROGATE}]})
    response = post_json(client, "/v1/chat/completions", body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "messages[0].content"


@pytest.mark.parametrize("path", ["/prompt/", "/stream/"])
def test_form_refuses_nul_with_422(client: Client, path: str) -> None:
    response = client.post(path, {"prompt": "hi\x00there"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert PROMPT_UNSTORABLE in response.content.decode()


def test_import_rejects_a_line_with_a_surrogate_and_keeps_the_rest() -> None:
    when = {"created_at": "2026-01-01T00:00:00Z"}
    lines = [json.dumps({"prompt": f"bad {LONE_SURROGATE}", **when})]
    lines.append(json.dumps({"prompt": "good", "output": "x\ud800", **when}))
    lines.append(json.dumps({"prompt": "fine", **when}))
    report = import_jsonl([line.encode() for line in lines], scope=Scope(session_id="importer"))
    assert report.inserted == 1
    assert [line.reason for line in report.rejected] == [REJECT_UNSTORABLE, REJECT_UNSTORABLE]


# --- properties: whatever the text, never a 5xx ----------------------------------------------------


@TEXT_SETTINGS
@given(text=prompts)
def test_api_generate_never_5xx_on_any_text(client: Client, text: str) -> None:
    response = post_json(client, "/api/generate", {"prompt": text, "params": {"max_new_tokens": 1}})
    assert_answered(response, f"/api/generate {text!r}")
    received = sent_over_json(text)
    if not is_storable(received):
        assert response.status_code == 422
    elif received.strip():
        assert response.status_code == 201
        assert response.json()["prompt"] == received.strip()


@TEXT_SETTINGS
@given(text=prompts, chat=st.booleans())
def test_openai_endpoints_never_5xx_on_any_text(client: Client, model: str, text: str, chat: bool) -> None:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    response = post_json(client, path, (chat_body if chat else completion_body)(model, text))
    assert_answered(response, f"{path} {text!r}")
    received = sent_over_json(text)
    if not is_storable(received):
        assert response.status_code == 422
    elif received.strip():
        assert response.status_code == 200


@TEXT_SETTINGS
@given(text=prompts, path=st.sampled_from(["/prompt/", "/stream/"]), htmx=st.booleans())
def test_form_never_5xx_on_any_text(client: Client, text: str, path: str, htmx: bool) -> None:
    body = b"max_new_tokens=1&prompt=" + quote(wire_bytes(text)).encode()
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.generic("POST", path, body, content_type="application/x-www-form-urlencoded", **headers)
    assert_answered(response, f"POST {path} {text!r}")


@TEXT_SETTINGS
@given(texts=st.lists(prompts, min_size=1, max_size=4))
def test_import_never_5xx_on_any_text(client: Client, texts: list[str]) -> None:
    when = "2026-01-01T00:00:00Z"
    lines = [json.dumps({"prompt": text, "output": text, "params": {text: text}, "created_at": when}) for text in texts]
    lines.append("\n".join(wire_bytes(text).decode("utf-8", "replace") for text in texts))
    upload = SimpleUploadedFile("h.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass"))
    response = client.post("/history/import/", {"file": upload})
    assert_answered(response, f"import {texts!r}")
