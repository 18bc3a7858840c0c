"""``/healthz`` and ``/readyz``: JSON, 200/503, model/store/outbox facts, nothing loaded by asking."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.interaction import Interaction
from app.errors import STORE_UNAVAILABLE
from app.services import nlp_service
from app.services.records import store_interaction


def test_healthz_answers_ok_without_store_or_model(client: Client, unreachable_store: SettingsWrapper) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.usefixtures("app_settings")
def test_readyz_is_200_when_model_is_loadable_and_store_answers(client: Client, settings: SettingsWrapper) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ready"
    assert data["model"]["name"] == settings.HF_MODEL
    assert data["model"]["task"] == "text-generation"
    assert data["model"]["loaded"] is False
    assert data["model"]["loadable"] is True
    assert data["store"] == {"reachable": True, "error": None}
    assert data["outbox"] == {"depth": 0, "failed": 0}


@pytest.mark.usefixtures("app_settings")
def test_readyz_does_not_load_the_model(client: Client) -> None:
    client.get("/readyz")
    assert nlp_service.default_service().is_loaded is False


@pytest.mark.usefixtures("app_settings")
def test_readyz_reports_a_loaded_model(client: Client) -> None:
    nlp_service.default_service().warm_up()
    assert client.get("/readyz").json()["model"]["loaded"] is True


@pytest.mark.usefixtures("causal_model_settings")
def test_readyz_is_503_with_outbox_depth_when_store_is_down(client: Client, unreachable_store: SettingsWrapper) -> None:
    store_interaction(Interaction(prompt="p", output="o", model="m", task="t", session_id="s"))
    response = client.get("/readyz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "unavailable"
    assert data["store"] == {"reachable": False, "error": STORE_UNAVAILABLE}
    assert data["outbox"]["depth"] == 1


@pytest.mark.usefixtures("store_settings")
def test_readyz_is_503_when_the_model_folder_is_missing(client: Client, settings: SettingsWrapper) -> None:
    settings.HF_MODEL = "/nonexistent/model-folder"
    settings.HF_TASK = "text-generation"
    nlp_service.reset_services()
    response = client.get("/readyz")
    nlp_service.reset_services()
    assert response.status_code == 503
    assert response.json()["model"]["loadable"] is False
    assert response.json()["model"]["error"] == "The folder /nonexistent/model-folder does not exist."


@pytest.mark.usefixtures("store_settings")
def test_readyz_is_503_for_an_uncached_hub_model_while_offline(
    client: Client, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    settings.HF_MODEL = "example-org/not-cached-model"
    settings.HF_TASK = "text2text-generation"
    nlp_service.reset_services()
    response = client.get("/readyz")
    nlp_service.reset_services()
    assert response.status_code == 503
    assert "HF_HUB_OFFLINE" in response.json()["model"]["error"]


def test_health_endpoints_refuse_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
