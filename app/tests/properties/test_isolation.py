"""Visitors never see or touch each other's interactions — checked in the repository and on every route.

Routes are read from the URL configuration: every route that takes an ``interaction_id`` must answer
404 (or 405 for a method it does not support) to another visitor, whatever the method, and every
page or API listing must leave the other visitor's text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Interaction, Scope
from app.errors import InteractionNotFound
from app.services.mongo_repo import InteractionRepository, get_repository

pytestmark = pytest.mark.usefixtures("app_settings")

MARKER = "owner-only-marker-7f3a"
TOKEN = "isolation-token-" + "z" * 24
# Not visitor data: auth pages, the stream transport (its ids are not interaction ids), metrics.
SKIPPED_PREFIXES = ("accounts/", "stream/", "metrics")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def routes() -> list[str]:
    return sorted(r for r in set(_walk(get_resolver().url_patterns)) if not r.startswith(SKIPPED_PREFIXES))


def id_routes() -> list[str]:
    return [r for r in routes() if "<str:interaction_id>" in r]


def list_routes() -> list[str]:
    return [r for r in routes() if "<" not in r]


def body_of(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


@pytest.fixture
def owned(client: Client) -> str:
    """An interaction created by ``client`` (the owner) through the form."""
    response = client.post("/prompt/", {"prompt": MARKER, "max_new_tokens": "2"})
    assert response.status_code == 303
    doc = get_repository().collection.find_one({"prompt": MARKER})
    assert doc is not None
    return str(doc["_id"])


def test_repository_reads_are_scoped(repo: InteractionRepository) -> None:
    mine = Interaction(prompt=MARKER, output="o", model="m", task="t", session_id="a")
    repo.insert(mine)
    other = Scope(session_id="b")
    with pytest.raises(InteractionNotFound):
        repo.get(mine.id, scope=other)
    assert repo.page(scope=other).items == []
    assert repo.count(scope=other) == 0
    assert repo.get(mine.id, scope=Scope(session_id="a")).prompt == MARKER


def test_there_are_id_routes_to_check() -> None:
    assert {"history/<str:interaction_id>/", "api/interactions/<str:interaction_id>"} <= set(id_routes())


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_other_visitor_gets_404_on_every_id_route(owned: str, other_client: Client, method: str) -> None:
    answers = {}
    for route in id_routes():
        path = "/" + route.replace("<str:interaction_id>", owned)
        response = other_client.generic(method, path, HTTP_HX_REQUEST="true")
        answers[path] = response.status_code
        assert MARKER not in body_of(response), path
    assert {path: code for path, code in answers.items() if code not in {404, 405}} == {}
    assert get_repository().collection.count_documents({"prompt": MARKER}) == 1


def test_other_visitor_gets_404_on_detail_page(owned: str, other_client: Client) -> None:
    response = other_client.get(f"/history/{owned}/")
    assert response.status_code == 404


def test_owner_still_sees_it_after_the_other_visitor_tried_everything(
    owned: str, client: Client, other_client: Client
) -> None:
    for route in id_routes():
        for method in ("POST", "DELETE"):
            other_client.generic(method, "/" + route.replace("<str:interaction_id>", owned))
    assert client.get(f"/api/interactions/{owned}").json()["prompt"] == MARKER
    assert get_repository().collection.find_one({"prompt": MARKER})["_id"] is not None  # type: ignore[index]


def test_listings_never_show_another_visitors_text(owned: str, other_client: Client) -> None:
    shown = {}
    for route in list_routes():
        # Searches stop short of the full marker so an echoed search box cannot match.
        for query in ({}, {"q": "owner-only-marker"}, {"q": "owner"}, {"q": "7f3a"}):
            response = other_client.get("/" + route, query)
            if MARKER in body_of(response):
                shown[route] = query
    assert shown == {}


def test_bearer_token_client_is_a_separate_visitor(owned: str, client: Client, settings: SettingsWrapper) -> None:
    settings.API_TOKENS = (TOKEN,)
    response = client.get(f"/api/interactions/{owned}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    listing = client.get("/api/interactions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert MARKER not in body_of(listing)


def test_owner_sees_own_text_in_listings(owned: str, client: Client) -> None:
    """Guard against a vacuous pass: the listings do show the owner's interaction."""
    pages = [body_of(client.get("/" + route)) for route in list_routes() if re.match(r"^(|history/)$", route)]
    assert any(MARKER in page for page in pages)
