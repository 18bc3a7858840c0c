"""The store is SIGKILLed while 20 prompts are being answered: when it returns, each is stored exactly once.

The store runs *without* ``--sync-on-commit``, so an acknowledged write is on disk only because the
repository asks for a journaled write concern (``j=True``); an answer whose write met the dead store
waits in the outbox and is replayed when the store is back (a replay of an id already stored is a
no-op). Prompts are sent from four threads at once; the store dies after the first answers and comes
back on the same port and data folder a little later.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.test import Client
from pymongo import MongoClient
from pytest_django.fixtures import Settings as SettingsWrapper

from app.services import mongo_repo, outbox
from app.services.api_tokens import token_scope
from app.tests.store_process import OwnedStore

pytestmark = pytest.mark.usefixtures("causal_model_settings")

TOKEN = "store-kill-token-0123456789abcdef"
PROMPTS = 20
KILL_AFTER = 5  # answers returned before the kill
RESTART_AFTER = 12  # answers returned before the store is started again
DB = "store_kill_test"


@pytest.fixture
def killable_store(tmp_path: Path, settings: SettingsWrapper) -> Iterator[OwnedStore]:
    store = OwnedStore(tmp_path)  # durability from the write concern alone
    store.start()
    settings.MONGO_URI = store.uri
    settings.MONGO_DB_NAME = DB
    settings.MONGO_COLLECTION = "interactions"
    settings.MONGO_TIMEOUT_MS = 150
    settings.OUTBOX_RETRY_SECONDS = 0.2
    settings.OUTBOX_MAX_RETRY_SECONDS = 0.5
    settings.API_TOKENS = (TOKEN,)
    mongo_repo.reset_repository()
    mongo_repo.get_repository().ensure_indexes()
    yield store
    outbox.reset_outbox()
    mongo_repo.reset_repository()
    store.stop()


def stored_prompts(uri: str) -> list[str]:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        docs = client[DB]["interactions"].find(token_scope(TOKEN).query(), {"prompt": 1, "status": 1})
        return [f"{doc['prompt']}|{doc.get('status')}" for doc in docs]


def test_store_killed_while_prompts_are_answered_stores_each_exactly_once(killable_store: OwnedStore) -> None:
    answered = threading.Semaphore(0)
    statuses: list[int] = []
    waited_in_outbox = 0

    def ask(number: int) -> None:
        api = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        response = api.post(
            "/api/generate",
            {"prompt": f"kill {number}", "params": {"max_new_tokens": 4, "do_sample": True}},
            content_type="application/json",
        )
        statuses.append(response.status_code)
        answered.release()

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(ask, number) for number in range(PROMPTS)]
        for done in range(1, PROMPTS + 1):
            assert answered.acquire(timeout=120), "a prompt was never answered"
            waited_in_outbox = max(waited_in_outbox, outbox.get_outbox().depth())
            if done == KILL_AFTER:
                killable_store.kill()
            if done == RESTART_AFTER:
                killable_store.start()
        for future in futures:
            future.result()

    assert statuses == [201] * PROMPTS  # the outbox took the answers the dead store could not
    assert waited_in_outbox >= 1

    deadline = time.monotonic() + 30
    while outbox.get_outbox().depth() and time.monotonic() < deadline:
        time.sleep(0.1)
    if outbox.get_outbox().depth():
        outbox.get_outbox().replay()
    assert outbox.get_outbox().depth() == 0

    records = Counter(stored_prompts(killable_store.uri))
    assert records == Counter(f"kill {n}|ok" for n in range(PROMPTS))  # none missing, none twice, none pending
