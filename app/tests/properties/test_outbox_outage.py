"""The store dies in the middle of a burst and comes back: nothing is lost, nothing is doubled, no 5xx.

The test owns its SecantusDB server (free port, temp data folder) so it can kill it with SIGKILL and
restart it on the same port and folder. The server runs with ``--sync-on-commit`` like a MongoDB
that journals acknowledged ``w=majority`` writes, so an acknowledged write survives the kill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from pymongo import MongoClient
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import mongo_repo, outbox
from app.services.api_tokens import token_scope
from app.tests.store_process import OwnedStore

pytestmark = pytest.mark.usefixtures("causal_model_settings")

TOKEN = "outage-test-token-0123456789abcdef"
BURST = 200
KILL_AT = 60
RESTART_AT = 130


@pytest.fixture
def owned_store(tmp_path: Path, settings: SettingsWrapper) -> Iterator[OwnedStore]:
    store = OwnedStore(tmp_path, sync_on_commit=True)
    store.start()
    settings.MONGO_URI = store.uri
    settings.MONGO_DB_NAME = "outage_test"
    settings.MONGO_COLLECTION = "interactions"
    settings.MONGO_TIMEOUT_MS = 150  # every lookup that meets the dead store waits this long
    settings.OUTBOX_RETRY_SECONDS = 0.2
    settings.OUTBOX_MAX_RETRY_SECONDS = 0.5
    settings.API_TOKENS = (TOKEN,)
    settings.HF_BATCH_WINDOW_MS = 0  # one request at a time here: do not wait for batch companions
    mongo_repo.reset_repository()
    yield store
    outbox.reset_outbox()
    mongo_repo.reset_repository()
    if store.process is not None and store.process.poll() is None:
        store.kill()


def wait_for_empty_outbox(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while (depth := outbox.get_outbox().depth()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return depth


def test_store_killed_mid_burst_loses_nothing_and_duplicates_nothing(owned_store: OwnedStore) -> None:
    api = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    browser = Client()
    statuses: list[int] = []
    created_ids: list[str] = []
    peak_depth = 0
    for number in range(BURST):
        if number == KILL_AT:
            owned_store.kill()
        if number == RESTART_AT:
            owned_store.start()
        response = api.post(
            "/api/generate",
            # Sampling: no answer-cache lookup, so this measures the write path only.
            {"prompt": f"burst {number}", "params": {"max_new_tokens": 1, "do_sample": True}},
            content_type="application/json",
        )
        statuses.append(response.status_code)
        if response.status_code == 201:
            created_ids.append(response.json()["id"])
        if number % 10 == 5:  # a person looking at the page meanwhile
            statuses.append(browser.get("/").status_code)
        peak_depth = max(peak_depth, outbox.get_outbox().depth())

    assert peak_depth >= RESTART_AT - KILL_AT  # every answer given during the outage waited in the outbox

    assert [code for code in statuses if code >= 500] == []
    assert len(created_ids) == BURST
    # Whatever the worker has not replayed yet, the management command's path writes now.
    if wait_for_empty_outbox(20):
        outbox.get_outbox().replay()
    assert outbox.get_outbox().depth() == 0

    with MongoClient(owned_store.uri, serverSelectionTimeoutMS=5000) as client:
        docs = list(client["outage_test"]["interactions"].find(token_scope(TOKEN).query(), {"_id": 1, "prompt": 1}))
    stored_ids = [str(doc["_id"]) for doc in docs]
    assert len(stored_ids) == BURST
    assert sorted(stored_ids) == sorted(created_ids)
    assert sorted(doc["prompt"] for doc in docs) == sorted(f"burst {n}" for n in range(BURST))
