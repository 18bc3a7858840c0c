"""The inference worker: batching gives each client its own answer, streaming, cancel, queue limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from app.domain.generation import GenerationParams, GenerationResult
from app.domain.streams import StreamEvent
from app.errors import QueueFull
from app.services.engines.transformers_batch import LocalBackend, pad_batch
from app.services.engines.transformers_service import NLPService
from app.services.engines.worker import InferenceRequest, ModelWorker, batch_key

GREEDY_12 = GenerationParams(max_new_tokens=12)
PROMPTS = (
    "Hello",
    "The quick brown fox jumps over the lazy dog and keeps running far away",
    "Paris",
    "What is the weather like today? It is sunny",
)
WAIT = 60.0


class SlowNoEos:
    """A logits processor for tests: each step sleeps a little and can never pick end-of-sequence."""

    def __init__(self, eos_ids: Sequence[int], delay: float = 0.01) -> None:
        self.eos_ids = list(eos_ids)
        self.delay = delay

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        time.sleep(self.delay)
        scores[:, self.eos_ids] = -float("inf")
        return scores


class GateBackend:
    """A stand-in model: each batch holds until ``release`` is set or all its requests are cancelled."""

    name = "gate"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[str]] = []
        self.started = threading.Event()

    def load(self) -> float:
        return 0.0

    def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        self.batches.append([request.prompt for request in requests])
        self.started.set()
        while not self.release.wait(0.005):
            if all(request.cancelled for request in requests):
                break
        for request in requests:
            reason = "cancelled" if request.cancelled else "stop"
            request._finish(result=fake_result(request.prompt.upper(), reason))


def fake_result(text: str, reason: str) -> GenerationResult:
    return GenerationResult(
        text=text,
        model="gate",
        task="text-generation",
        prompt_tokens=1,
        output_tokens=1,
        load_seconds=0.0,
        generate_seconds=0.0,
        total_seconds=0.0,
        finish_reason=reason,  # type: ignore[arg-type]
    )


@pytest.fixture
def causal(tiny_causal_model: Path) -> Iterator[NLPService]:
    service = NLPService(model=str(tiny_causal_model), task="text-generation")
    service.warm_up()
    yield service
    service.unload()


@pytest.fixture
def seq2seq(tiny_t5_model: Path) -> Iterator[NLPService]:
    service = NLPService(model=str(tiny_t5_model), task="text2text-generation")
    service.warm_up()
    yield service
    service.unload()


@pytest.fixture
def gate() -> Iterator[GateBackend]:
    backend = GateBackend()
    yield backend
    backend.release.set()


def unbatched(service: NLPService, prompt: str, params: GenerationParams) -> tuple[str, int]:
    completion = service.complete(service.loaded_model(), prompt, params)
    return completion.text, completion.output_tokens


def batched(service: NLPService, prompts: Sequence[str], params: Sequence[GenerationParams]) -> list[GenerationResult]:
    worker = ModelWorker(LocalBackend(service), batch_window_seconds=1.0, max_batch=len(prompts))
    requests = [worker.submit(prompt, param) for prompt, param in zip(prompts, params, strict=True)]
    results = [request.wait(WAIT) for request in requests]
    assert worker.batches_run == 1 and worker.largest_batch == len(prompts)
    worker.stop()
    return results


def drain(request: InferenceRequest) -> list[StreamEvent]:
    return list(request.events(timeout=WAIT))


# --- Batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture_name", ["causal", "seq2seq"])
def test_batched_greedy_answers_equal_unbatched_answers(fixture_name: str, request: pytest.FixtureRequest) -> None:
    service: NLPService = request.getfixturevalue(fixture_name)
    expected = [unbatched(service, prompt, GREEDY_12) for prompt in PROMPTS]
    results = batched(service, PROMPTS, [GREEDY_12] * len(PROMPTS))
    assert [(result.text, result.output_tokens) for result in results] == expected


def test_each_row_stops_at_its_own_max_new_tokens(causal: NLPService) -> None:

    params = [GenerationParams(max_new_tokens=n) for n in (3, 12, 7, 1)]
    LocalBackend.extra_logits_processors = (SlowNoEos(sorted(causal.loaded_model().eos_token_ids), delay=0),)
    try:
        results = batched(causal, PROMPTS, params)
    finally:
        LocalBackend.extra_logits_processors = ()
    assert [result.output_tokens for result in results] == [3, 12, 7, 1]
    assert {result.finish_reason for result in results} == {"length"}


def test_streamed_deltas_add_up_to_the_final_answer(causal: NLPService) -> None:
    request = causal.submit("Hello", GREEDY_12)
    events = drain(request)
    kinds = [event.kind for event in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "done"
    streamed = "".join(event.text for event in events if event.kind == "token")
    assert streamed == request.wait(WAIT).text


def test_left_padding_puts_pad_tokens_before_causal_prompts() -> None:
    ids, mask = pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])], pad_token_id=0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_right_padding_for_seq2seq_encoders() -> None:
    ids, mask = pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])], pad_token_id=0, left=False)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_requests_that_would_change_when_batched_run_alone() -> None:
    assert batch_key(GenerationParams(do_sample=True, seed=3)) is None
    assert batch_key(GenerationParams(num_beams=2)) is None
    assert batch_key(GenerationParams(repetition_penalty=1.2)) is None
    assert batch_key(GenerationParams(max_new_tokens=5)) == batch_key(GenerationParams(max_new_tokens=50))
    assert batch_key(GenerationParams(do_sample=True)) != batch_key(GenerationParams())


def test_incompatible_requests_go_into_separate_batches(gate: GateBackend) -> None:
    worker = ModelWorker(gate, batch_window_seconds=0.5)
    gate.release.set()
    first = worker.submit("a", GenerationParams())
    seeded = worker.submit("b", GenerationParams(do_sample=True, seed=1))
    third = worker.submit("c", GenerationParams(max_new_tokens=3))
    for request in (first, seeded, third):
        request.wait(WAIT)
    assert sorted(map(sorted, gate.batches)) == [["a", "c"], ["b"]]


# --- Cancel ------------------------------------------------------------------------------------


def test_cancel_keeps_the_partial_answer_and_frees_the_worker(causal: NLPService) -> None:
    LocalBackend.extra_logits_processors = (SlowNoEos(sorted(causal.loaded_model().eos_token_ids)),)
    try:
        long_request = causal.submit("Hello", GenerationParams(max_new_tokens=1000))
        streamed = ""
        for event in long_request.events(timeout=WAIT):
            if event.kind == "token":
                streamed += event.text
                long_request.cancel()
        result = long_request.wait(WAIT)
        next_result = causal.generate("Paris", GenerationParams(max_new_tokens=2))
    finally:
        LocalBackend.extra_logits_processors = ()
    assert result.finish_reason == "cancelled"
    assert 1 <= result.output_tokens < 1000
    assert result.text == streamed
    assert next_result.output_tokens == 2


def test_cancelling_one_row_lets_the_others_finish(causal: NLPService) -> None:
    eos = sorted(causal.loaded_model().eos_token_ids)
    LocalBackend.extra_logits_processors = (SlowNoEos(eos),)
    worker = ModelWorker(LocalBackend(causal), batch_window_seconds=1.0, max_batch=2)
    try:
        doomed = worker.submit("Hello", GenerationParams(max_new_tokens=500))
        survivor = worker.submit("Paris", GenerationParams(max_new_tokens=20))
        while (event := doomed.next_event(WAIT)) is not None and event.kind != "token":
            pass
        doomed.cancel()
        assert survivor.wait(WAIT).output_tokens == 20
        assert doomed.wait(WAIT).finish_reason == "cancelled"
    finally:
        LocalBackend.extra_logits_processors = ()
        worker.stop()
    assert worker.batches_run == 1


def test_cancelling_a_queued_request_removes_it_and_moves_the_others_up(gate: GateBackend) -> None:
    worker = ModelWorker(gate, max_batch=1, batch_window_seconds=0)
    running = worker.submit("running", GenerationParams())
    assert gate.started.wait(WAIT)
    leaving = worker.submit("leaving", GenerationParams())
    staying = worker.submit("staying", GenerationParams())
    leaving.cancel()
    assert leaving.wait(WAIT).finish_reason == "cancelled"
    positions = [event.position for event in iter(lambda: staying.next_event(0.01), None) if event.kind == "queued"]
    assert positions == [2, 1]
    gate.release.set()
    assert running.wait(WAIT).text == "RUNNING"
    assert staying.wait(WAIT).text == "STAYING"
    assert gate.batches == [["running"], ["staying"]]


# --- Queue -------------------------------------------------------------------------------------


def test_full_queue_refuses_with_retry_after(gate: GateBackend) -> None:
    worker = ModelWorker(gate, max_queue=2, max_batch=1, batch_window_seconds=0)
    worker.submit("running", GenerationParams())
    assert gate.started.wait(WAIT)
    worker.submit("one", GenerationParams())
    worker.submit("two", GenerationParams())
    with pytest.raises(QueueFull) as refused:
        worker.submit("three", GenerationParams())
    assert refused.value.retry_after >= 1
    assert refused.value.message == (
        f"The model is busy: 2 requests are already waiting. Please try again in {refused.value.retry_after} s."
    )


def test_queued_requests_are_told_their_position(gate: GateBackend) -> None:
    worker = ModelWorker(gate, max_batch=1, batch_window_seconds=0)
    worker.submit("running", GenerationParams())
    assert gate.started.wait(WAIT)
    second = worker.submit("second", GenerationParams())
    third = worker.submit("third", GenerationParams())
    assert second.next_event(WAIT) == StreamEvent("queued", position=1)
    assert third.next_event(WAIT) == StreamEvent("queued", position=2)


def test_a_failing_batch_reports_an_error_and_the_worker_goes_on(gate: GateBackend) -> None:
    class Broken(GateBackend):
        def run_batch(self, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
            if requests[0].prompt == "boom":
                raise RuntimeError("kaput")
            super().run_batch(requests, load_seconds=load_seconds)

    backend = Broken()
    backend.release.set()
    worker = ModelWorker(backend, max_batch=1, batch_window_seconds=0)
    failing = worker.submit("boom", GenerationParams())
    events = drain(failing)
    assert events[-1] == StreamEvent("error", text="Generation failed on the server (RuntimeError). Please try again.")
    assert worker.submit("fine", GenerationParams()).wait(WAIT).text == "FINE"


def test_worker_thread_starts_with_the_first_request_not_before(causal: NLPService) -> None:
    worker = ModelWorker(LocalBackend(causal))
    assert worker._thread is None
    worker.submit("Hello", GenerationParams(max_new_tokens=1)).wait(WAIT)
    assert worker._thread is not None and worker._thread.daemon
    worker.stop()
    worker.join(WAIT)
    assert not worker._thread.is_alive()


def test_on_finish_runs_before_the_done_event(gate: GateBackend) -> None:
    seen: list[str] = []
    gate.release.set()
    worker = ModelWorker(gate, batch_window_seconds=0)
    request = worker.submit("x", GenerationParams(), on_finish=lambda finished: seen.append(finished.result.text))
    assert [event.kind for event in drain(request)][-1] == "done"
    assert seen == ["X"]


@pytest.mark.bundled_model
def test_bundled_smollm2_batched_greedy_answers_equal_unbatched_answers() -> None:
    from app.services.bundled_model import ensure_bundled_model
    from app.services.nlp_service import bundled_models_dir

    service = NLPService(model=str(ensure_bundled_model(bundled_models_dir())), task="text-generation")
    service.warm_up()
    prompts = ("What is the capital of France?", "Name three primary colors.", "What does a bee make?", "Hi")
    params = GenerationParams(max_new_tokens=16)
    try:
        expected = [unbatched(service, prompt, params) for prompt in prompts]
        results = batched(service, prompts, [params] * len(prompts))
    finally:
        service.unload()
    assert [(result.text, result.output_tokens) for result in results] == expected


def test_cancelling_the_only_request_during_the_batch_window_keeps_the_worker_alive(gate: GateBackend) -> None:
    gate.release.set()
    worker = ModelWorker(gate, batch_window_seconds=0.05)
    leaving = worker.submit("leaving", GenerationParams())
    leaving.cancel()
    time.sleep(0.2)  # let the window pass with an empty queue (this used to kill the worker thread)
    assert worker._thread is not None and worker._thread.is_alive()
    assert worker.submit("next", GenerationParams()).wait(WAIT).text == "NEXT"
    assert gate.batches == [["next"]]
