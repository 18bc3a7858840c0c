"""A generation is a durable record from its first moment: write-ahead, checkpoints, Stop, the end.

Real store, the tiny causal model; ``SlowNoEos`` keeps an answer going long enough to watch it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import torch
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import Ask, GenerationParams
from app.domain.ids import utc_now
from app.domain.interaction import Interaction, Scope
from app.errors import QueueFull, StreamNotFound
from app.services import generation, mongo_repo
from app.services.engines.transformers_batch import LocalBackend
from app.services.engines.transformers_service import NLPService
from app.services.live_generations import get_checkpointer, worker_name
from app.services.local_store import free_port
from app.services.model_registry import service_for
from app.services.mongo_documents import parse_interaction_id
from app.services.mongo_generation import request_stop
from app.services.mongo_repo import get_repository
from app.services.outbox import get_outbox
from app.tests.services.test_inference import SlowNoEos

SCOPE = Scope(session_id="durable-visitor")
WAIT = 60.0


class Gate:
    """A logits processor that holds the first generation step until ``release`` is set."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.reached.set()
        self.release.wait(WAIT)
        return scores


@pytest.fixture
def model(app_settings: SettingsWrapper) -> Iterator[NLPService]:
    service = service_for(None)
    assert isinstance(service, NLPService)
    service.warm_up()
    yield service
    LocalBackend.extra_logits_processors = ()
    generation.reset_streams()


def slow(model: NLPService, delay: float = 0.02) -> None:
    LocalBackend.extra_logits_processors = (SlowNoEos(sorted(model.loaded_model().eos_token_ids), delay=delay),)


def ask(max_new_tokens: int, prompt: str = "Hello") -> Ask:
    return Ask(prompt=prompt, params=GenerationParams(max_new_tokens=max_new_tokens), use_cache=False)


def stored(interaction_id: str) -> Interaction:
    return get_repository().get(interaction_id, scope=SCOPE)


def raw(interaction_id: str) -> dict[str, Any]:
    doc = get_repository().collection.find_one({"_id": parse_interaction_id(interaction_id)})
    assert doc is not None
    return doc


def test_the_pending_record_is_stored_before_the_engine_returns_a_token(model: NLPService) -> None:
    gate = Gate()
    LocalBackend.extra_logits_processors = (gate,)
    stream = generation.start_stream(ask(3), SCOPE)
    assert gate.reached.wait(WAIT)  # the engine is computing the first token
    record = stored(stream.id)
    assert stream.request is not None and stream.request.streamed_tokens == 0
    assert (record.status, record.output, record.prompt, record.model) == ("pending", "", "Hello", model.model)
    assert record.params["max_new_tokens"] == 3
    assert record.worker == worker_name() and record.heartbeat_at == record.created_at
    gate.release.set()
    assert stream.ended.wait(WAIT)
    final = stored(stream.id)
    assert (final.id, final.status, final.created_at) == (stream.id, "ok", record.created_at)
    assert get_repository().count(scope=SCOPE) == 1


def test_a_blocking_answer_is_written_ahead_too(model: NLPService) -> None:
    gate = Gate()
    LocalBackend.extra_logits_processors = (gate,)
    answers: list[Interaction] = []
    worker = threading.Thread(target=lambda: answers.append(generation.answer_blocking(ask(2), SCOPE)))
    worker.start()
    assert gate.reached.wait(WAIT)
    pending = list(get_repository().collection.find({"status": "pending"}))
    assert len(pending) == 1 and pending[0]["prompt"] == "Hello"
    gate.release.set()
    worker.join(WAIT)
    assert answers[0].id == str(pending[0]["_id"]) and stored(answers[0].id).status == "ok"


def test_checkpoints_store_the_partial_text_at_most_every_half_second(model: NLPService) -> None:
    slow(model)
    started = time.monotonic()
    stream = generation.start_stream(ask(150), SCOPE)
    seen: list[tuple[int, str, datetime]] = []
    while not stream.ended.wait(0.05):
        doc = raw(stream.id)
        if doc["status"] == "pending" and doc["checkpoint"] and (not seen or seen[-1][0] != doc["checkpoint"]):
            seen.append((doc["checkpoint"], doc["output"], doc["heartbeat_at"]))
    elapsed = time.monotonic() - started
    final = stored(stream.id)
    assert final.status == "ok" and final.output_tokens == 150
    assert len(seen) >= 2, "a generation of several seconds was checkpointed"
    assert all(final.output.startswith(text) for _, text, _ in seen)
    assert [text for _, text, _ in seen] == sorted((text for _, text, _ in seen), key=len)
    writes = final.checkpoint - 1  # the final record counts one more
    assert seen[-1][0] <= writes <= elapsed / 0.5 + 1
    beats = [beat for _, _, beat in seen]
    assert all((later - earlier).total_seconds() >= 0.49 for earlier, later in zip(beats, beats[1:], strict=False))


def test_a_stop_written_on_the_record_cancels_within_a_second(model: NLPService) -> None:
    slow(model)
    stream = generation.start_stream(ask(1000), SCOPE)
    assert stream.request is not None
    while stream.request.streamed_tokens < 3:
        time.sleep(0.01)
    asked = time.monotonic()
    assert request_stop(get_repository(), stream.id, scope=SCOPE, now=utc_now())  # as any other process would
    assert stream.ended.wait(1.0)
    assert time.monotonic() - asked <= 1.0
    final = stored(stream.id)
    assert final.status == "cancelled" and final.stop_requested_at is not None
    assert final.output == stream.request.partial_text()  # exactly the text streamed until Stop


def test_a_local_stop_cancels_at_once_and_marks_the_record(model: NLPService) -> None:
    slow(model)
    stream = generation.start_stream(ask(1000), SCOPE)
    assert stream.request is not None
    while stream.request.streamed_tokens < 2:
        time.sleep(0.01)
    stopped = generation.stop_stream(stream.id, SCOPE, wait_seconds=5.0)
    assert stopped is stream and stream.finished
    assert stored(stream.id).status == "cancelled"


def test_a_stream_nobody_listens_to_runs_to_its_end_and_is_stored(model: NLPService) -> None:
    slow(model, delay=0.0)
    stream = generation.start_stream(ask(40), SCOPE)  # its events are never read (a closed tab)
    assert stream.ended.wait(WAIT)
    final = stored(stream.id)
    assert (final.status, final.output_tokens) == ("ok", 40)
    assert not get_checkpointer().is_live(stream.id)


def test_a_stop_for_an_unknown_generation_is_not_found(model: NLPService) -> None:
    with pytest.raises(StreamNotFound):
        generation.stop_stream("0" * 24, SCOPE)
    with pytest.raises(StreamNotFound):
        generation.stop_stream("not-an-id", SCOPE)


def test_a_full_queue_leaves_no_record(model: NLPService, settings: SettingsWrapper) -> None:
    settings.HF_QUEUE_MAX = 1
    model.unload()  # the worker is made again with the new limit
    model.warm_up()
    gate = Gate()
    LocalBackend.extra_logits_processors = (gate,)
    running = generation.start_stream(ask(2, "running"), SCOPE)
    assert gate.reached.wait(WAIT)
    generation.start_stream(ask(2, "waiting"), SCOPE)
    with pytest.raises(QueueFull):
        generation.start_stream(ask(2, "refused"), SCOPE)
    gate.release.set()
    assert running.ended.wait(WAIT)
    prompts = sorted(doc["prompt"] for doc in get_repository().collection.find({}))
    assert prompts == ["running", "waiting"]


def test_a_queued_generation_only_heartbeats_and_still_hears_a_stop(model: NLPService) -> None:
    gate = Gate()
    LocalBackend.extra_logits_processors = (gate,)
    running = generation.start_stream(ask(2, "running"), SCOPE)
    assert gate.reached.wait(WAIT)
    queued = generation.start_stream(ask(2, "queued"), SCOPE)  # waits behind the held batch: no text
    time.sleep(2.6)
    assert raw(queued.id)["checkpoint"] == 1  # the heartbeat alone, after 2 s; no write per 0.5 s tick
    asked = time.monotonic()
    assert request_stop(get_repository(), queued.id, scope=SCOPE, now=utc_now())
    assert queued.ended.wait(1.0) and time.monotonic() - asked <= 1.0
    assert stored(queued.id).status == "cancelled"
    gate.release.set()
    assert running.ended.wait(WAIT) and stored(running.id).status == "ok"


def test_with_the_store_down_the_final_record_takes_the_pending_ones_place_in_the_outbox(
    model: NLPService, settings: SettingsWrapper
) -> None:
    reachable = settings.MONGO_URI
    settings.MONGO_URI, settings.MONGO_TIMEOUT_MS = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 200
    mongo_repo.reset_repository()
    slow(model)
    stream = generation.start_stream(ask(30), SCOPE)  # written ahead into the outbox
    assert get_outbox().depth() == 1
    assert stream.ended.wait(WAIT)
    [item] = get_outbox().pending()
    assert item.interaction_id == stream.id and get_outbox().find(stream.id).status == "ok"  # type: ignore[union-attr]
    settings.MONGO_URI, settings.MONGO_TIMEOUT_MS = reachable, 3000
    mongo_repo.reset_repository()
    get_outbox().replay()
    final = stored(stream.id)
    assert (final.status, final.output_tokens) == ("ok", 30)
    assert get_repository().count(scope=SCOPE) == 1
