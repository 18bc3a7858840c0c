"""JSON API: status codes and shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from app.errors import INTERACTION_NOT_FOUND, PROMPT_EMPTY, STORE_UNAVAILABLE
from app.views.api import JSON_MALFORMED, JSON_NOT_OBJECT, JSON_REQUIRED

pytestmark = pytest.mark.usefixtures("app_settings")


def generate(client: Client, body: Any, content_type: str = "application/json") -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/generate", data, content_type=content_type)


def test_generate_returns_201_with_the_documented_shape(client: Client) -> None:
    response = generate(client, {"prompt": "Hello", "params": {"max_new_tokens": 4}})
    assert response.status_code == 201
    data = response.json()
    assert set(data) >= {"id", "output", "model", "task", "created_at", "timings_ms", "tokens", "params", "status"}
    assert data["task"] == "text-generation"
    assert data["status"] == "ok"
    assert data["created_at"].endswith("Z")
    assert data["params"]["max_new_tokens"] == 4
    assert data["tokens"]["output"] <= 4


def test_generated_interaction_can_be_fetched_by_the_same_client(client: Client) -> None:
    created = generate(client, {"prompt": "Fetch me"}).json()
    response = client.get(f"/api/interactions/{created['id']}")
    assert response.status_code == 200
    assert response.json()["prompt"] == "Fetch me"
    assert response.json()["output"] == created["output"]


def test_other_session_gets_404(client: Client, other_client: Client) -> None:
    created = generate(client, {"prompt": "Mine"}).json()
    response = other_client.get(f"/api/interactions/{created['id']}")
    assert response.status_code == 404
    assert response.json() == {"error": INTERACTION_NOT_FOUND}


def test_unknown_id_is_404_json(client: Client) -> None:
    response = client.get("/api/interactions/doesnotexist")
    assert response.status_code == 404
    assert response.json() == {"error": INTERACTION_NOT_FOUND}


def test_malformed_json_is_400(client: Client) -> None:
    response = generate(client, "{not json")
    assert response.status_code == 400
    assert response.json() == {"error": JSON_MALFORMED}


def test_invalid_utf8_is_400(client: Client) -> None:
    response = generate(client, b'{"prompt": "\xff\xfe"}')
    assert response.status_code == 400


def test_non_object_json_is_400(client: Client) -> None:
    response = generate(client, [1, 2])
    assert response.status_code == 400
    assert response.json() == {"error": JSON_NOT_OBJECT}


def test_wrong_content_type_is_415(client: Client) -> None:
    response = client.post("/api/generate", {"prompt": "hi"})
    assert response.status_code == 415
    assert response.json() == {"error": JSON_REQUIRED}


def test_empty_prompt_is_422(client: Client) -> None:
    response = generate(client, {"prompt": "  "})
    assert response.status_code == 422
    assert response.json()["error"] == PROMPT_EMPTY


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": "lots"}, "max_new_tokens"),
        ({"temperature": 9}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"$where": "1"}, "$where"),
    ],
)
def test_bad_params_are_422_with_field_messages(client: Client, params: dict[str, Any], field: str) -> None:
    response = generate(client, {"prompt": "Hi", "params": params})
    assert response.status_code == 422
    assert field in response.json()["fields"]


def test_prompt_that_is_not_a_string_is_422(client: Client) -> None:
    response = generate(client, {"prompt": {"$ne": None}})
    assert response.status_code == 422


def test_store_down_still_answers_and_queues_the_interaction(client: Client, unreachable_store: object) -> None:
    from app.services.outbox import get_outbox

    response = generate(client, {"prompt": "Hello"})
    assert response.status_code == 201
    assert get_outbox().depth() == 1


def test_store_down_read_is_503_json(client: Client, unreachable_store: object) -> None:
    response = client.get("/api/interactions/0123456789abcdef01234567")
    assert response.status_code == 503
    assert response.json() == {"error": STORE_UNAVAILABLE}
