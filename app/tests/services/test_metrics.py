"""/metrics: opt-in, guarded, parses with the Prometheus text parser, and counters move."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pytest_django.fixtures import Settings as SettingsWrapper

from app.errors import METRICS_LOCAL_ONLY, METRICS_TOKEN_REQUIRED
from app.services import metrics, metrics_exposition
from app.services.metrics_exposition import is_internal_address, scrape_refusal
from app.services.outbox import outbox_depth

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-metrics-token-0123456789"
APP_PREFIX = "django_hf_ml_"


@pytest.fixture
def metrics_on(settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = ""
    yield settings


def scrape(client: Client, **headers: str) -> dict[str, list[Sample]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


def value(families: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    for one in families.get(family, []):
        if one.name == sample and all(one.labels.get(k) == v for k, v in labels.items()):
            return float(one.value)
    return 0.0


def test_metrics_are_off_by_default(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 404
    assert b"django_hf_ml" not in response.content


@pytest.mark.usefixtures("metrics_on")
def test_metrics_parse_with_the_prometheus_text_parser(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "django_hf_ml_http_requests",
        "django_hf_ml_http_request_duration_seconds",
        "django_hf_ml_interactions",
        "django_hf_ml_generation_duration_seconds",
        "django_hf_ml_generated_tokens",
        "django_hf_ml_time_to_first_token_seconds",
        "django_hf_ml_model_load_duration_seconds",
        "django_hf_ml_model_loads",
        "django_hf_ml_store_errors",
        "django_hf_ml_queue_depth",
        "django_hf_ml_outbox_pending",
        "process_resident_memory_bytes",
    } <= names


@pytest.mark.usefixtures("metrics_on")
def test_app_metric_names_follow_prometheus_conventions(client: Client) -> None:
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(APP_PREFIX):
            continue
        if family.type == "counter":
            assert f"# TYPE {family.name}_total counter" in text or f"# TYPE {family.name} counter" in text
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        assert "_ms" not in family.name and "milli" not in family.name


@pytest.mark.usefixtures("metrics_on")
def test_request_counter_and_latency_move_when_a_page_is_served(client: Client) -> None:
    before = scrape(client)
    assert client.get("/healthz").status_code == 200
    after = scrape(client)
    labels = {"view": "app:healthz", "method": "GET", "status": "200"}
    family, total = "django_hf_ml_http_requests", "django_hf_ml_http_requests_total"
    assert value(after, family, total, **labels) == value(before, family, total, **labels) + 1
    family, count = "django_hf_ml_http_request_duration_seconds", "django_hf_ml_http_request_duration_seconds_count"
    labels = {"view": "app:healthz", "method": "GET"}
    assert value(after, family, count, **labels) == value(before, family, count, **labels) + 1


@pytest.mark.usefixtures("metrics_on")
def test_unknown_paths_are_counted_as_unmatched(client: Client) -> None:
    family, total = "django_hf_ml_http_requests", "django_hf_ml_http_requests_total"
    before = value(scrape(client), family, total, view="unmatched", status="404")
    client.get("/no-such-page-xyz/")
    assert value(scrape(client), family, total, view="unmatched", status="404") == before + 1


@pytest.mark.usefixtures("metrics_on", "app_settings")
def test_generation_counters_move_when_a_prompt_is_answered(client: Client, settings: SettingsWrapper) -> None:
    model = settings.HF_MODEL
    before = scrape(client)
    response = client.post("/prompt/", {"prompt": "Count me", "max_new_tokens": "4"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    after = scrape(client)
    family = "django_hf_ml_interactions"
    assert value(after, family, f"{family}_total", model=model, status="ok") == (
        value(before, family, f"{family}_total", model=model, status="ok") + 1
    )
    family = "django_hf_ml_generation_duration_seconds"
    assert (
        value(after, family, f"{family}_count", model=model)
        == value(before, family, f"{family}_count", model=model) + 1
    )
    family = "django_hf_ml_generated_tokens"
    assert value(after, family, f"{family}_total", model=model) > value(before, family, f"{family}_total", model=model)
    family = "django_hf_ml_model_load_duration_seconds"
    assert value(after, family, family, model=model) > 0
    queue = [sample for sample in after["django_hf_ml_queue_depth"] if sample.labels == {"model": model}]
    assert [sample.value for sample in queue] == [0.0]  # the model's inference worker, idle again
    labels = {"view": "app:submit_prompt", "method": "POST", "status": "200"}
    assert value(after, "django_hf_ml_http_requests", "django_hf_ml_http_requests_total", **labels) >= 1


@pytest.mark.usefixtures("metrics_on")
def test_store_errors_are_counted_by_action(client: Client, unreachable_store: SettingsWrapper) -> None:
    family, total = "django_hf_ml_store_errors", "django_hf_ml_store_errors_total"
    before = value(scrape(client), family, total, action="stats")
    assert client.get("/stats/").status_code == 503
    assert value(scrape(client), family, total, action="stats") == before + 1


@pytest.mark.usefixtures("metrics_on")
def test_worker_queue_depth_is_read_when_scraped(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_exposition, "queue_depths", lambda: {"pushed/model": 3})
    families = scrape(client)
    assert value(families, "django_hf_ml_queue_depth", "django_hf_ml_queue_depth", model="pushed/model") == 3


@pytest.mark.usefixtures("metrics_on")
def test_outbox_depth_is_read_when_scraped(client: Client) -> None:
    families = scrape(client)
    assert value(families, "django_hf_ml_outbox_pending", "django_hf_ml_outbox_pending") == outbox_depth()


def test_token_is_required_when_configured(client: Client, metrics_on: SettingsWrapper) -> None:
    metrics_on.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert missing.content.decode().strip() == METRICS_TOKEN_REQUIRED
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_with_a_token_any_address_may_scrape(client: Client, metrics_on: SettingsWrapper) -> None:
    metrics_on.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200


@pytest.mark.usefixtures("metrics_on")
def test_public_address_is_refused_without_a_token(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert response.content.decode().strip() == METRICS_LOCAL_ONLY


@pytest.mark.usefixtures("metrics_on")
def test_request_through_a_proxy_is_refused_without_a_token(client: Client) -> None:
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("172.16.0.9", True),
        ("192.168.1.20", True),
        ("::ffff:10.0.0.1", True),
        ("fd00::1", True),
        ("203.0.113.9", False),
        ("8.8.8.8", False),
        ("", False),
        ("not-an-ip", False),
    ],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal_address(address) is internal


def test_bearer_scheme_is_case_insensitive_and_token_exact() -> None:
    common = {"remote_addr": "203.0.113.9", "headers": {}}
    assert scrape_refusal(token=TOKEN, authorization=f"bearer {TOKEN}", **common) is None  # type: ignore[arg-type]
    assert scrape_refusal(token=TOKEN, authorization=f"Bearer {TOKEN}x", **common) == METRICS_TOKEN_REQUIRED  # type: ignore[arg-type]
    assert scrape_refusal(token=TOKEN, authorization=f"Basic {TOKEN}", **common) == METRICS_TOKEN_REQUIRED  # type: ignore[arg-type]


def test_recording_never_raises() -> None:
    metrics.observe_generation(model="m", seconds=float("nan"), tokens=-5)
    metrics.observe_request(view=None, method="BREW", status=418, seconds=-1.0)


@pytest.mark.parametrize("token", ["short", "has a space in the middle of it"])
def test_a_weak_metrics_token_stops_start_up(tmp_path: Path, token: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    env.update({"METRICS_TOKEN": token, "ENV_FILE": str(tmp_path / "none.env"), "DATA_DIR": str(tmp_path)})
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'django_hf_ml.settings'; import django; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 16 characters without spaces" in result.stderr


def test_several_worker_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    """gunicorn --workers N: with PROMETHEUS_MULTIPROC_DIR each worker writes its own file, any one reports all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    record = (
        "from app.services import metrics; "
        "metrics.observe_request(view='app:index', method='GET', status=200, seconds=0.01); "
        "metrics.observe_model_load(model='m', seconds=1.5)"
    )
    for _ in range(2):  # two "workers", one after the other (different pids)
        subprocess.run([sys.executable, "-c", record], cwd=ROOT, env=env, check=True)
    report = "from app.services import metrics_exposition; print(metrics_exposition.exposition().decode())"
    text = subprocess.run(
        [sys.executable, "-c", report], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    families = {family.name: family.samples for family in text_string_to_metric_families(text)}
    labels = {"view": "app:index", "method": "GET", "status": "200"}
    assert value(families, "django_hf_ml_http_requests", "django_hf_ml_http_requests_total", **labels) == 2
    assert (
        value(families, "django_hf_ml_model_load_duration_seconds", "django_hf_ml_model_load_duration_seconds") == 1.5
    )
    assert "django_hf_ml_queue_depth" in families
