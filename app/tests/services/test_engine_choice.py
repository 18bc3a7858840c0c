"""Engine settings and choice (HF_ENGINE…), and the app on the llamacpp engine end to end."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.errors import ModelUnavailable
from app.services import answer_cache, model_registry, nlp_service
from app.services.doctor.checks import check_engine
from app.services.engines import choice
from app.services.engines.llama_build import LlamaBinary
from app.services.engines.llamacpp import LlamaCppService
from app.services.engines.openai_compat import OpenAIService
from app.services.engines.sidecar import SIDECAR_RESTARTING
from app.services.engines.transformers_service import NLPService
from app.services.model_registry import service_for
from app.tests.views.test_stream import HTMX, all_events, parse_events, stored, stream_id
from django_hf_ml.choices import BUNDLED_MODEL_ID
from django_hf_ml.engineconfig import engine_settings

ROOT = Path(__file__).resolve().parents[3]
VALID: dict[str, str] = {
    "engine": "auto",
    "model": "",
    "openai_base_url": "",
    "openai_api_key": "",
    "openai_api": "chat",
    "llama_server_bin": "",
    "llama_slots": "",
    "llama_ctx": "",
}


def _settings(**changes: str) -> Any:
    return engine_settings(**{**VALID, **changes})


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    choice.reset_engine_services()
    model_registry.reset_tracker()
    yield
    choice.reset_engine_services()
    model_registry.reset_tracker()
    nlp_service.reset_services()


@pytest.fixture
def bundled_default(settings: SettingsWrapper) -> SettingsWrapper:
    settings.HF_MODEL = ""
    settings.HF_TASK = "text-generation"
    settings.HF_ENDPOINT_URL = ""
    settings.HF_DEVICE, settings.HF_DTYPE = "auto", "auto"
    return settings


@pytest.fixture
def on_llamacpp(bundled_default: SettingsWrapper, llama_binary: LlamaBinary) -> SettingsWrapper:
    """HF_ENGINE=auto, the bundled model, and a llama-server binary: the default engine."""
    bundled_default.ENGINES = dataclasses.replace(
        bundled_default.ENGINES, engine="auto", llama_server_bin=str(llama_binary.path), llama_slots=4
    )
    bundled_default.HF_THREADS = 2
    return bundled_default


@pytest.fixture
def no_binary(bundled_default: SettingsWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsWrapper:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    bundled_default.DATA_DIR = tmp_path
    bundled_default.ENGINES = dataclasses.replace(bundled_default.ENGINES, engine="auto", llama_server_bin="")
    return bundled_default


# --- Settings ----------------------------------------------------------------------------------


def test_defaults_are_auto_with_eight_slots() -> None:
    parsed = _settings()
    assert (parsed.engine, parsed.llama_slots, parsed.llama_ctx, parsed.openai_api) == ("auto", 8, 16384, "chat")


def test_the_default_context_gives_each_slot_2048_tokens_whatever_the_slot_count() -> None:
    """A 1024-token answer (the most max_new_tokens allows) must fit in a slot next to its prompt."""
    assert _settings(llama_slots="16").llama_ctx == 16 * 2048
    assert _settings(llama_slots="3", llama_ctx="4096").llama_ctx == 4096  # an explicit LLAMA_CTX wins


def test_bad_engine_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        _settings(engine="fast")
    assert str(caught.value) == "HF_ENGINE='fast' is not allowed: use one of auto, transformers, llamacpp, openai."


def test_openai_engine_needs_a_base_url() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^HF_ENGINE=openai needs OPENAI_BASE_URL"):
        _settings(engine="openai")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^OPENAI_BASE_URL='ftp://x' must start with http"):
        _settings(engine="openai", openai_base_url="ftp://x")


def test_bad_openai_api_names_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^OPENAI_API='responses' is not allowed: use one of chat"):
        _settings(openai_api="responses")


def test_llamacpp_engine_needs_a_gguf_model() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^HF_ENGINE=llamacpp runs GGUF files, but HF_MODEL='gpt2'"):
        _settings(engine="llamacpp", model="gpt2")
    assert _settings(engine="llamacpp", model="/models/x.Q4_K_M.gguf").engine == "llamacpp"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"llama_slots": "0"}, "LLAMA_SLOTS=0 is out of range: allowed 1..256."),
        ({"llama_slots": "many"}, "LLAMA_SLOTS='many' is not a whole number (1..256)."),
        ({"llama_ctx": "8k"}, "LLAMA_CTX='8k' is not a whole number (256..1048576)."),
        ({"llama_slots": "16", "llama_ctx": "2048"}, "LLAMA_CTX=2048 is too small for LLAMA_SLOTS=16"),
    ],
)
def test_bad_llama_numbers_name_the_variable(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        _settings(**changes)
    assert str(caught.value).startswith(message)


def test_settings_refuse_a_bad_engine_at_start_up(tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENGINE": "gpu", "ENV_FILE": str(tmp_path / "none.env"), "DATA_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "django_hf_ml.settings"
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert completed.returncode != 0
    assert "HF_ENGINE='gpu' is not allowed: use one of auto, transformers, llamacpp, openai." in completed.stderr


# --- Choice ------------------------------------------------------------------------------------


def test_auto_runs_the_bundled_model_on_llamacpp(on_llamacpp: SettingsWrapper, llama_binary: LlamaBinary) -> None:
    service = service_for(None)
    assert isinstance(service, LlamaCppService)
    assert service.model == BUNDLED_MODEL_ID
    assert service.gguf_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert not service.is_loaded  # nothing starts until the first request or the warm-up
    assert check_engine(on_llamacpp)[0].level == "OK"


def test_auto_falls_back_to_transformers_without_a_binary(
    no_binary: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.services.engines.choice"):
        assert isinstance(service_for(None), NLPService)
        assert isinstance(service_for(None), NLPService)
    fallbacks = [r for r in caplog.records if "runs on the transformers engine instead" in r.getMessage()]
    assert len(fallbacks) == 1
    finding = check_engine(no_binary)[0]
    assert finding.level == "WARN"
    assert "no llama-server binary" in finding.detail


def test_hub_models_stay_on_transformers(on_llamacpp: SettingsWrapper) -> None:
    spec = model_registry.ModelSpec(id="google/flan-t5-small", task="text2text-generation")
    assert choice.choose_engine(spec).engine == "transformers"


def test_auto_keeps_transformers_when_a_gpu_is_asked_for(on_llamacpp: SettingsWrapper) -> None:
    on_llamacpp.HF_DEVICE = "cuda"
    assert choice.default_engine_facts()["engine"] == "transformers"


def test_explicit_transformers_engine(on_llamacpp: SettingsWrapper) -> None:
    on_llamacpp.ENGINES = dataclasses.replace(on_llamacpp.ENGINES, engine="transformers")
    assert isinstance(service_for(None), NLPService)


def test_openai_engine_serves_the_default_model(bundled_default: SettingsWrapper) -> None:
    bundled_default.ENGINES = dataclasses.replace(
        bundled_default.ENGINES, engine="openai", openai_base_url="http://127.0.0.1:9/v1"
    )
    service = service_for(None)
    assert isinstance(service, OpenAIService)
    assert (service.model, service.backend.name) == (BUNDLED_MODEL_ID, "http://127.0.0.1:9/v1")


def test_a_gguf_model_without_a_binary_is_a_clear_error(no_binary: SettingsWrapper, tmp_path: Path) -> None:
    no_binary.HF_MODEL = str(tmp_path / "model.Q8_0.gguf")
    with pytest.raises(ModelUnavailable, match=r"no llama-server binary was found"):
        service_for(None)


# --- The app on the llamacpp engine ------------------------------------------------------------


@pytest.fixture
def llamacpp_app(on_llamacpp: SettingsWrapper, store_settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    on_llamacpp.ANSWER_CACHE_SIZE = 0
    answer_cache.reset_cache()
    yield on_llamacpp


def _generate(client: Client, prompt: str) -> Any:
    body = {"prompt": prompt, "params": {"max_new_tokens": 8}}
    return client.post("/api/generate", json.dumps(body), content_type="application/json")


def test_readyz_and_header_name_the_engine(llamacpp_app: SettingsWrapper, client: Client) -> None:
    ready = client.get("/readyz").json()
    assert ready["model"]["engine"]["engine"] == "llamacpp"
    assert ready["model"]["engine"]["gguf"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    page = client.get("/").content.decode()
    assert '<span class="model-engine">llamacpp</span>' in page


def test_api_answers_on_llamacpp_and_the_record_is_kept(llamacpp_app: SettingsWrapper, client: Client) -> None:
    response = _generate(client, "What is the capital of France?")
    assert response.status_code == 201
    data = response.json()
    assert (data["model"], data["status"]) == (BUNDLED_MODEL_ID, "ok")
    assert data["output"] and 1 <= data["tokens"]["output"] <= 8
    stored = client.get(f"/api/interactions/{data['id']}").json()
    assert stored["output"] == data["output"]


def test_api_is_503_while_the_sidecar_restarts_then_recovers(llamacpp_app: SettingsWrapper, client: Client) -> None:
    assert _generate(client, "First question").status_code == 201
    service = service_for(None)
    assert isinstance(service, LlamaCppService) and service.sidecar.pid is not None
    os.kill(service.sidecar.pid, signal.SIGKILL)
    response = _generate(client, "Second question")
    assert response.status_code == 503
    assert response.json()["error"] == SIDECAR_RESTARTING.format(model=BUNDLED_MODEL_ID)
    deadline = time.monotonic() + 30
    while not (service.sidecar.running and service.sidecar.restarts) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _generate(client, "Third question").status_code == 201


def test_sse_feed_on_llamacpp_matches_the_record(llamacpp_app: SettingsWrapper, client: Client) -> None:
    started = client.post("/stream/", {"prompt": "Stream from llama.cpp", "max_new_tokens": "12"}, **HTMX)
    events = all_events(client, stream_id(started))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "queued" and "started" in kinds and kinds[-1] == "done"
    streamed = html.unescape("".join(data for kind, data in events if kind == "token"))
    [doc] = stored("Stream from llama.cpp")
    assert (doc["status"], doc["model"]) == ("ok", BUNDLED_MODEL_ID)
    assert doc["output"] == streamed and streamed


def test_stop_button_on_llamacpp_ends_the_stream(llamacpp_app: SettingsWrapper, client: Client) -> None:
    started = client.post("/stream/", {"prompt": "Write a very long story.", "max_new_tokens": "400"}, **HTMX)
    sid = stream_id(started)
    response = client.get(f"/stream/{sid}/events")
    tokens = 0
    for kind, _ in parse_events(response):
        if kind == "token":
            tokens += 1
            if tokens == 1:
                assert client.post(f"/stream/{sid}/stop", **HTMX).status_code == 204
    [doc] = stored("Write a very long story.")
    assert doc["status"] == "cancelled"
    assert tokens <= 3
