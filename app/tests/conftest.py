"""Shared fixtures: a real MongoDB-protocol server, tiny local models, wired-up settings.

Storage tests run through the real PyMongo client against a SecantusDB server started for the
session on a free port, or against any server named by ``TEST_MONGO_URI`` (e.g. a real mongod).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import mongo_repo, nlp_service
from app.services.local_store import free_port, start_local_store
from app.services.mongo_repo import InteractionRepository

pytest_plugins = ["app.tests.conftest_models", "app.tests.conftest_browser", "app.tests.engine_fixtures"]

# Processes the tests start (servers, workers, fresh interpreters) run the engine the tests run in
# this process: transformers with the static batcher, unless a test sets these itself.
os.environ.setdefault("HF_ENGINE", "transformers")
os.environ.setdefault("HF_BATCHING", "static")


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TEST_MONGO_URI")
    if external:
        yield external
        return
    folder = tmp_path_factory.mktemp("secantus")
    store = start_local_store(
        host="127.0.0.1", port=free_port(), storage_dir=folder / "data", log_file=folder / "secantusd.log"
    )
    yield store.uri
    store.stop()


@pytest.fixture
def db_name() -> str:
    return f"test_hf_ml_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def repo(mongo_uri: str, db_name: str) -> Iterator[InteractionRepository]:
    """A repository on a fresh database, dropped afterwards."""
    repository = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions", timeout_ms=3000)
    repository.ensure_indexes()
    yield repository
    repository.client.drop_database(db_name)
    repository.close()


@pytest.fixture
def store_settings(settings: SettingsWrapper, mongo_uri: str, db_name: str) -> Iterator[SettingsWrapper]:
    """Point the app's process-wide repository at a fresh test database."""
    settings.MONGO_URI = mongo_uri
    settings.MONGO_DB_NAME = db_name
    settings.MONGO_COLLECTION = "interactions"
    mongo_repo.reset_repository()
    mongo_repo.get_repository().ensure_indexes()
    yield settings
    mongo_repo.reset_repository()
    cleanup = InteractionRepository(uri=mongo_uri, db_name=db_name, collection_name="interactions")
    cleanup.client.drop_database(db_name)
    cleanup.close()


@pytest.fixture
def unreachable_store(settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    """A MongoDB URI where nothing listens, with a short selection timeout."""
    settings.MONGO_URI = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    settings.MONGO_TIMEOUT_MS = 200
    mongo_repo.reset_repository()
    yield settings
    mongo_repo.reset_repository()


@pytest.fixture
def causal_model_settings(settings: SettingsWrapper, tiny_causal_model: Path) -> Iterator[SettingsWrapper]:
    """Serve the tiny local causal model."""
    settings.HF_MODEL = str(tiny_causal_model)
    settings.HF_TASK = "text-generation"
    nlp_service.reset_services()
    yield settings
    nlp_service.reset_services()


@pytest.fixture
def app_settings(store_settings: SettingsWrapper, causal_model_settings: SettingsWrapper) -> SettingsWrapper:
    """A fully wired app: tiny model + fresh test database."""
    return store_settings


@pytest.fixture
def other_client() -> Client:
    """A second visitor with its own session."""
    return Client()


@pytest.fixture(autouse=True)
def _sessions_db(db: None) -> None:
    """Sessions live in Django's SQLite database; every view test needs it."""


@pytest.fixture(autouse=True)
def _isolated_outbox(settings: SettingsWrapper, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own interaction outbox (never the developer's DATA_DIR one)."""
    from app.services import outbox

    settings.OUTBOX_PATH = tmp_path / "outbox.sqlite3"
    outbox.reset_outbox()
    yield
    outbox.reset_outbox()


@pytest.fixture
def fresh_generation_state() -> Iterator[None]:
    """After the test: no live streams, rate-limit counters or cached answers carried into the next one."""
    from app.services import answer_cache, generation, rate_limit

    yield
    generation.reset_streams()
    rate_limit.reset_rate_limits()
    answer_cache.reset_cache()


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The conversation (``ChatTurn``s) every request handed to the (tiny, real) model carried, in order;
    recorded by wrapping ``NLPService.submit`` in this process (where a live ASGI server runs too)."""
    from app.services.engines.transformers_service import NLPService

    seen: list[tuple[Any, ...]] = []
    original = NLPService.submit

    def spy(self: NLPService, prompt: str, params: Any, **kwargs: Any) -> Any:
        seen.append(tuple(kwargs.get("messages") or ()))
        return original(self, prompt, params, **kwargs)

    monkeypatch.setattr(NLPService, "submit", spy)
    return seen
