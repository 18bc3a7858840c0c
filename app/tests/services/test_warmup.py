"""HF_WARMUP: the model loads once, in the serving process only; /readyz waits for it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import nlp_service, warmup
from app.services.engines.transformers_service import NLPService
from app.services.warmup import WarmupStatus, warm_up, warm_up_serving_process, warmup_enabled, warmup_status
from app.tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
LOADED_LINE = "Loaded model "


@pytest.fixture(autouse=True)
def _fresh_warmup() -> Iterator[None]:
    warmup.reset_warmup()
    yield
    warmup.reset_warmup()


# --- when ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "serve", "expected"),
    [(None, True, True), (None, False, False), (True, False, True), (True, True, True)]
    + [(False, True, False), (False, False, False)],
)
def test_warmup_enabled_follows_hf_warmup(
    settings: SettingsWrapper, setting: bool | None, serve: bool, expected: bool
) -> None:
    settings.HF_WARMUP = setting
    assert warmup_enabled(serve_command=serve) is expected


@pytest.mark.parametrize("setting", [None, False])
def test_serving_process_does_not_load_without_hf_warmup(
    causal_model_settings: SettingsWrapper, setting: bool | None
) -> None:
    causal_model_settings.HF_WARMUP = setting
    assert warm_up_serving_process() is None
    assert not nlp_service.default_service().is_loaded
    assert warmup_status() == WarmupStatus(enabled=False, phase="off")


def test_serving_process_loads_the_model_in_the_background_once(
    causal_model_settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    causal_model_settings.HF_WARMUP = True
    with caplog.at_level(logging.INFO, logger="app"):
        thread = warm_up_serving_process()
        assert thread is not None
        assert thread.name == "hf-warmup"
        thread.join(timeout=60)
        assert warm_up_serving_process() is None  # already ready: no second thread, no second load
    assert nlp_service.default_service().is_loaded
    status = warmup_status()
    assert (status.enabled, status.phase, status.error) == (True, "ready", None)
    assert sum(message.startswith(LOADED_LINE) for message in caplog.messages) == 1
    assert any(message.startswith("Warming up the model ") for message in caplog.messages)
    assert any(message.startswith("Model ready in ") for message in caplog.messages)


def test_a_missing_gpu_stops_the_serving_process_before_the_thread_starts(
    causal_model_settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    causal_model_settings.HF_WARMUP, causal_model_settings.HF_DEVICE = True, "cuda"
    with pytest.raises(Exception, match="HF_DEVICE=cuda asks for a CUDA GPU") as error:
        warm_up_serving_process()
    assert type(error.value).__name__ == "RuntimeUnavailable"
    assert warmup_status().phase == "off"


def test_failed_warm_up_is_recorded_with_its_message(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.HF_MODEL, settings.HF_TASK, settings.HF_WARMUP = str(tmp_path / "missing"), "text-generation", True
    nlp_service.reset_services()
    thread = warm_up_serving_process()
    assert thread is not None
    thread.join(timeout=60)
    status = warmup_status()
    assert (status.enabled, status.phase) == (True, "failed")
    assert status.error is not None and "does not exist" in status.error
    nlp_service.reset_services()


def test_progress_lines_go_to_the_given_writer(causal_model_settings: SettingsWrapper) -> None:
    lines: list[str] = []
    seconds = warm_up(progress=lines.append)
    assert seconds > 0
    assert lines[0].startswith(f"Warming up the model {causal_model_settings.HF_MODEL} (text-generation) in process ")
    assert lines[1].startswith("Model ready in ")
    assert lines[1].endswith(
        "(device=cpu dtype=float32 threads=" + str(torch.get_num_threads()) + " (HF_DEVICE=auto, HF_DTYPE=auto))."
    )
    assert warm_up(progress=lines.append) == 0.0
    assert len(lines) == 2


# --- /readyz ------------------------------------------------------------------------------------


@pytest.fixture
def slow_load(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold every model load until the test sets the event."""
    release = threading.Event()
    original = NLPService._load

    def held(self: NLPService) -> object:
        release.wait(timeout=30)
        return original(self)

    monkeypatch.setattr(NLPService, "_load", held)
    yield release
    release.set()


def test_readyz_is_503_while_warming_up_then_200(
    app_settings: SettingsWrapper, slow_load: threading.Event, client: Client
) -> None:
    app_settings.HF_WARMUP = True
    thread = warm_up_serving_process()
    assert thread is not None
    loading = client.get("/readyz")
    assert loading.status_code == 503
    assert loading.json()["model"]["warmup"] == {"enabled": True, "phase": "loading", "seconds": None, "error": None}
    slow_load.set()
    thread.join(timeout=60)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    model = ready.json()["model"]
    assert model["loaded"] is True
    assert model["warmup"]["phase"] == "ready"
    assert model["runtime"]["device"] == "cpu"
    assert model["runtime"]["dtype"] == "float32"
    assert model["runtime"]["threads"] == torch.get_num_threads()
    assert model["runtime"]["error"] is None


def test_readyz_does_not_wait_for_a_model_when_warm_up_is_off(app_settings: SettingsWrapper, client: Client) -> None:
    app_settings.HF_WARMUP = False
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["model"]["warmup"]["phase"] == "off"
    assert response.json()["model"]["loaded"] is False


def test_readyz_is_503_and_names_hf_device_when_the_gpu_is_missing(
    app_settings: SettingsWrapper, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app_settings.HF_DEVICE = "cuda:1"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["model"]["runtime"]["error"].startswith("HF_DEVICE=cuda:1 asks for a CUDA GPU")


def test_readyz_reports_int8_threads_of_the_loaded_model(app_settings: SettingsWrapper, client: Client) -> None:
    app_settings.HF_DTYPE, app_settings.HF_THREADS, app_settings.HF_WARMUP = "int8", 1, True
    thread = warm_up_serving_process()
    assert thread is not None
    thread.join(timeout=60)
    runtime = client.get("/readyz").json()["model"]["runtime"]
    assert (runtime["device"], runtime["dtype"], runtime["threads"]) == ("cpu", "int8", 1)


# --- serve command --------------------------------------------------------------------------------


def test_serve_refuses_to_start_when_the_gpu_is_missing(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings.HF_DEVICE = "cuda"
    with pytest.raises(CommandError) as error:
        call_command("serve", "127.0.0.1:0")
    assert str(error.value).startswith("HF_DEVICE=cuda asks for a CUDA GPU, but torch sees none")


# --- real processes -------------------------------------------------------------------------------


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "MONGO_"))}
    env.update(
        ENV_FILE=str(env_file),
        DATA_DIR=str(tmp_path / "data"),
        DJANGO_SETTINGS_MODULE="django_hf_ml.settings",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        DEBUG="1",
        **extra,
    )
    return env


WSGI_CHILD = """
import threading, time
import django_hf_ml.wsgi  # what gunicorn does in each worker
from app.domain.generation import GenerationParams
from app.services.nlp_service import default_service
for thread in threading.enumerate():
    if thread.name == "hf-warmup":
        thread.join(timeout=60)
result = default_service().generate("Hello", GenerationParams(max_new_tokens=2))
print(f"first request load_seconds={result.load_seconds}", flush=True)
service = default_service()
worker = service.worker()
service.unload()  # stop the inference thread before the interpreter exits, as a server shutdown would
worker.join(timeout=30)
"""


def test_wsgi_import_warms_up_once_and_the_first_request_pays_no_load(tiny_causal_model: Path, tmp_path: Path) -> None:
    env = child_env(tmp_path, HF_WARMUP="1", HF_MODEL=str(tiny_causal_model), HF_TASK="text-generation")
    result = subprocess.run(
        [sys.executable, "-c", WSGI_CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(LOADED_LINE) == 1
    assert "Warming up the model " in result.stderr
    assert "first request load_seconds=0.0" in result.stdout


def test_wsgi_import_with_a_missing_gpu_fails_naming_hf_device(tiny_causal_model: Path, tmp_path: Path) -> None:
    env = child_env(
        tmp_path, HF_WARMUP="1", HF_DEVICE="cuda:3", HF_MODEL=str(tiny_causal_model), HF_TASK="text-generation"
    )
    code = "import torch; torch.cuda.is_available = lambda: False; import django_hf_ml.wsgi"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr[-4000:]
    assert "RuntimeUnavailable: HF_DEVICE=cuda:3 asks for a CUDA GPU" in result.stderr, result.stderr[-4000:]


def test_management_commands_do_not_load_the_model_even_with_hf_warmup(tiny_causal_model: Path, tmp_path: Path) -> None:
    env = child_env(tmp_path, HF_WARMUP="1", HF_MODEL=str(tiny_causal_model), HF_TASK="text-generation")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert LOADED_LINE not in result.stderr
    assert "Warming up" not in result.stderr + result.stdout


def test_serve_warms_up_once_with_a_progress_line_and_is_ready(
    tiny_causal_model: Path, tmp_path: Path, mongo_uri: str
) -> None:
    port = free_port()
    env = child_env(
        tmp_path,
        HF_WARMUP="1",
        HF_MODEL=str(tiny_causal_model),
        HF_TASK="text-generation",
        MONGO_URI=mongo_uri,
        MONGO_DB_NAME=f"warmup_{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        body = _wait_for_ready(f"http://127.0.0.1:{port}/readyz", process, lines)
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)
    output = "".join(lines)
    assert '"loaded": true' in body
    assert output.count(LOADED_LINE) == 1, output
    assert "Model runtime: device=cpu dtype=float32" in output
    assert "Warming up the model " in output
    assert "Model ready in " in output


def _wait_for_ready(url: str, process: subprocess.Popen[str], lines: list[str]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("serve exited early:\n" + "".join(lines))
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local test server)
                return str(response.read().decode())
        except OSError:
            time.sleep(0.3)
    pytest.fail("serve never became ready:\n" + "".join(lines))


def test_a_failed_warm_up_turns_ready_once_a_later_load_succeeds(
    causal_model_settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    causal_model_settings.HF_WARMUP = True
    original = NLPService._load
    attempts: list[int] = []

    def fail_once(self: NLPService) -> object:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return original(self)

    monkeypatch.setattr(NLPService, "_load", fail_once)
    thread = warm_up_serving_process()
    assert thread is not None
    thread.join(timeout=60)
    assert warmup_status().phase == "failed"
    service = nlp_service.default_service()
    service._retry_backoff_seconds = 0.0  # the next request retries at once
    service.warm_up()
    assert warmup_status() == WarmupStatus(enabled=True, phase="ready", seconds=None, error=None)


def test_a_child_forked_after_warm_up_started_loads_its_own_model_and_warns(
    causal_model_settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    causal_model_settings.HF_WARMUP = True
    parent_service = nlp_service.default_service()
    with caplog.at_level(logging.WARNING, logger="app.services.warmup"):
        warmup._after_fork_in_child()  # what os.register_at_fork runs in a gunicorn --preload worker
    for thread in threading.enumerate():
        if thread.name == "hf-warmup":
            thread.join(timeout=60)
    child_service = nlp_service.default_service()
    assert child_service is not parent_service  # the parent's service and its locks are left behind
    assert child_service.is_loaded
    assert warmup_status().phase == "ready"
    assert warmup.PRELOAD_WARNING in caplog.messages
