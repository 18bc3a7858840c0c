"""The reaper: a pending record of a dead process becomes ``interrupted`` with its partial text."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from bson import ObjectId
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.filters import HistoryFilter
from app.domain.ids import utc_now
from app.domain.interaction import Interaction, Scope
from app.services import history, history_import
from app.services.live_generations import worker_name
from app.services.mongo_documents import from_document
from app.services.mongo_generation import INTERRUPTED_MESSAGE, write_record
from app.services.mongo_repo import get_repository
from app.services.reaper import reap_stale

SCOPE = Scope(session_id="reaped-visitor")


def pending(*, output: str, quiet_seconds: float, worker: str) -> Interaction:
    record = Interaction(
        prompt="Tell me a long story",
        output=output,
        model="m",
        task="text-generation",
        session_id=SCOPE.session_id,
        status="pending",
        worker=worker,
        checkpoint=3,
    )
    record.created_at = utc_now() - timedelta(seconds=quiet_seconds + 1)
    record.heartbeat_at = utc_now() - timedelta(seconds=quiet_seconds)
    get_repository().insert(record)
    return record


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_silent_pending_record_is_interrupted_and_keeps_its_text(store_settings: SettingsWrapper) -> None:
    silent = pending(output="Once upon a", quiet_seconds=11, worker="elsewhere:1")
    assert reap_stale() == 1
    record = get_repository().get(silent.id, scope=SCOPE)
    assert (record.status, record.output, record.error) == ("interrupted", "Once upon a", INTERRUPTED_MESSAGE)
    assert record.retryable
    found = history.history_page(scope=SCOPE, filters=HistoryFilter(status="interrupted"), cursor=None).rows
    assert [row.interaction.id for row in found] == [silent.id]


def test_a_record_with_a_recent_heartbeat_elsewhere_is_left_alone(store_settings: SettingsWrapper) -> None:
    alive = pending(output="Once", quiet_seconds=3, worker="elsewhere:1")
    assert reap_stale() == 0
    assert get_repository().get(alive.id, scope=SCOPE).status == "pending"


def test_a_record_of_a_dead_process_of_this_machine_is_reaped_without_waiting(store_settings: SettingsWrapper) -> None:
    host = worker_name().rpartition(":")[0]
    orphan = pending(output="Once upon", quiet_seconds=2, worker=f"{host}:{dead_pid()}")
    assert reap_stale() == 1
    assert get_repository().get(orphan.id, scope=SCOPE).status == "interrupted"


def test_a_late_final_answer_replaces_the_interrupted_record(store_settings: SettingsWrapper) -> None:
    slow = pending(output="Once", quiet_seconds=11, worker="elsewhere:1")
    reap_stale()
    final = Interaction(
        prompt=slow.prompt, output="Once upon a time.", model="m", task="text-generation", session_id=SCOPE.session_id
    )
    final.id, final.created_at = slow.id, slow.created_at
    write_record(get_repository(), final)
    record = get_repository().get(slow.id, scope=SCOPE)
    assert (record.status, record.output) == ("ok", "Once upon a time.")
    assert get_repository().count(scope=SCOPE) == 1


def test_documents_from_before_durable_generation_still_load() -> None:
    old = {"_id": ObjectId(), "prompt": "p", "output": "o", "created_at": utc_now(), "status": "ok"}
    record = from_document(old)
    assert (record.heartbeat_at, record.checkpoint, record.stop_requested_at, record.worker) == (None, 0, None, None)


def test_an_exported_pending_record_is_imported_as_interrupted() -> None:
    line = {"prompt": "p", "output": "half", "created_at": "2026-11-30T10:00:00Z", "status": "pending"}
    assert history_import.record_to_interaction(line, scope=SCOPE).status == "interrupted"


def test_a_record_naming_this_process_that_it_does_not_run_is_reaped(store_settings: SettingsWrapper) -> None:
    earlier = pending(output="Once", quiet_seconds=2, worker=worker_name())  # e.g. pid 1 of the last container
    assert reap_stale() == 1
    assert get_repository().get(earlier.id, scope=SCOPE).status == "interrupted"
