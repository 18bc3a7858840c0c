"""Continuous batching for the transformers engine (app/services/engines/continuous.py) on tiny models."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings

from app.domain.generation import GenerationParams
from app.services import model_registry, nlp_service
from app.services.engines import choice
from app.services.engines.continuous import ContinuousBackend
from app.services.engines.transformers_service import NLPService
from app.services.engines.worker import InferenceRequest, ModelWorker
from django_hf_ml.engineconfig import engine_settings

PROMPTS = (
    "Hello world! How are you doing?",
    "Paris is the capital of France.",
    "The quick brown fox",
    "Explain why the sky looks blue during the day but red at sunset, in detail please.",
    "Numbers such as 1, 2, 3",
    "Write a short poem about the sea.",
)


@pytest.fixture(scope="module")
def causal_service(tiny_causal_model: Path) -> Iterator[NLPService]:
    service = NLPService(model=str(tiny_causal_model), task="text-generation")
    service.warm_up()
    yield service
    service.unload()


@pytest.fixture
def engine(causal_service: NLPService) -> Iterator[tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]]:
    backend = ContinuousBackend(causal_service, max_rows=8)
    finished: dict[str, list[int]] = {}
    backend.on_row_finished = lambda request, ids: finished.__setitem__(request.id, ids)
    worker = ModelWorker(backend, max_batch=8, batch_window_seconds=0.0)  # type: ignore[arg-type]
    yield worker, backend, finished
    worker.stop()


def unbatched_ids(service: NLPService, prompt: str, params: GenerationParams) -> list[int]:
    """What a plain, unbatched ``generate()`` gives for one prompt (up to and including end of sequence)."""
    loaded = service.loaded_model()
    inputs = service.encode_prompt(loaded, prompt)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        output = loaded.model.generate(**inputs, **params.generate_kwargs(), pad_token_id=loaded.pad_token_id)  # type: ignore[operator]
    ids: list[int] = []
    for token in output[0, inputs["input_ids"].shape[-1] :].tolist():
        ids.append(int(token))
        if token in loaded.eos_token_ids:
            break
    return ids


def _first_tokens(request: InferenceRequest, count: int) -> None:
    seen = 0
    while seen < count:
        event = request.next_event(timeout=30)
        assert event is not None
        if event.kind in ("done", "error"):
            return
        seen += event.kind == "token"


def test_greedy_rows_joining_mid_batch_match_unbatched_generate_token_for_token(
    causal_service: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, backend, finished = engine
    params = GenerationParams(max_new_tokens=24, do_sample=False)
    requests = []
    for prompt in PROMPTS:  # each one arrives while the earlier ones are decoding
        requests.append(worker.submit(prompt, params))
        _first_tokens(requests[-1], 2)
    results = [request.wait(30) for request in requests]
    for prompt, request, result in zip(PROMPTS, requests, results, strict=True):
        expected = unbatched_ids(causal_service, prompt, params)
        assert finished[request.id] == expected, prompt
        assert result.output_tokens == len(expected)
    assert backend.largest_batch >= 2


def test_rows_that_arrive_together_are_prefilled_in_one_forward_and_match_unbatched_generate(
    causal_service: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, backend, finished = engine
    running = worker.submit(PROMPTS[3], GenerationParams(max_new_tokens=30, do_sample=False))
    _first_tokens(running, 2)  # the group joins a batch that is already decoding
    lengths = (20, 1, 12, 20)  # one row ends on its first token: the others join without it
    group = [
        InferenceRequest(prompt=prompt, params=GenerationParams(max_new_tokens=length, do_sample=False))
        for prompt, length in zip((PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[5]), lengths, strict=True)
    ]
    prefills_before = backend.prefills
    backend.run_batch(group, load_seconds=0.0)  # one call: the loop takes the four requests at once
    for request in [*group, running]:
        request.wait(30)
        assert finished[request.id] == unbatched_ids(causal_service, request.prompt, request.params), request.prompt
    assert backend.largest_prefill == 4
    assert backend.prefills == prefills_before + 1
    assert [request.result.output_tokens for request in group if request.result] == [
        len(finished[request.id]) for request in group
    ]


def test_repetition_penalty_matches_unbatched_generate(
    causal_service: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, _, finished = engine
    params = GenerationParams(max_new_tokens=20, do_sample=False, repetition_penalty=1.5)
    requests = [worker.submit(prompt, params) for prompt in PROMPTS[:3]]
    for prompt, request in zip(PROMPTS[:3], requests, strict=True):
        request.wait(30)
        assert finished[request.id] == unbatched_ids(causal_service, prompt, params)


def test_seeded_sampling_does_not_depend_on_the_companions(
    engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]],
) -> None:
    worker, _, _ = engine
    seeded = GenerationParams(max_new_tokens=16, do_sample=True, temperature=1.0, top_k=20, top_p=0.9, seed=11)
    alone = worker.submit(PROMPTS[0], seeded).wait(30).text
    crowd = [worker.submit(prompt, GenerationParams(max_new_tokens=16)) for prompt in PROMPTS[1:4]]
    together = worker.submit(PROMPTS[0], seeded).wait(30).text
    for request in crowd:
        request.wait(30)
    assert together == alone


@pytest.fixture
def endless(causal_service: NLPService) -> Iterator[NLPService]:
    """The same model with no end-of-sequence token, so answers run to ``max_new_tokens``."""
    loaded = causal_service.loaded_model()
    causal_service._loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())
    yield causal_service
    causal_service._loaded = loaded


def test_a_second_request_streams_before_the_first_one_ends(
    endless: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, backend, _ = engine
    long = worker.submit(PROMPTS[0], GenerationParams(max_new_tokens=400))
    _first_tokens(long, 3)
    short = worker.submit(PROMPTS[1], GenerationParams(max_new_tokens=4))
    assert short.wait(30).output_tokens == 4
    assert not long.finished, "the short request waited for the long one (head-of-line blocking)"
    assert short.first_token_at is not None
    result = long.wait(60)
    assert result.output_tokens == 400
    assert backend.largest_batch >= 2


def test_stop_ends_a_row_within_one_token_and_the_others_go_on(
    endless: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, _, finished = engine
    stopped = worker.submit(PROMPTS[0], GenerationParams(max_new_tokens=400))
    other = worker.submit(PROMPTS[1], GenerationParams(max_new_tokens=60))
    _first_tokens(stopped, 2)
    tokens_at_stop = len(finished.get(stopped.id, [])) or None
    stopped.cancel()
    result = stopped.wait(10)
    assert result.finish_reason == "cancelled"
    assert tokens_at_stop is None and result.output_tokens <= 4
    assert other.wait(30).output_tokens == 60


def test_seq2seq_models_take_the_static_path(tiny_t5_model: Path) -> None:
    service = NLPService(model=str(tiny_t5_model), task="text2text-generation")
    worker = ModelWorker(ContinuousBackend(service), batch_window_seconds=0.0)  # type: ignore[arg-type]
    try:
        service.warm_up()
        result = worker.submit("summarize: the house is wonderful", GenerationParams(max_new_tokens=6)).wait(30)
        assert result.task == "text2text-generation" and result.output_tokens >= 1
    finally:
        worker.stop()
        service.unload()


def test_many_concurrent_clients_all_finish(
    causal_service: NLPService, engine: tuple[ModelWorker, ContinuousBackend, dict[str, list[int]]]
) -> None:
    worker, backend, finished = engine
    params = GenerationParams(max_new_tokens=12)
    requests: list[InferenceRequest] = []
    lock = threading.Lock()

    def client(prompt: str) -> None:
        request = worker.submit(prompt, params)
        with lock:
            requests.append(request)
        request.wait(60)

    threads = [threading.Thread(target=client, args=(PROMPTS[n % len(PROMPTS)],)) for n in range(12)]
    for thread in threads:
        thread.start()
        time.sleep(0.005)
    for thread in threads:
        thread.join(60)
    assert len(requests) == 12 and all(request.finished for request in requests)
    for request in requests:
        assert finished[request.id] == unbatched_ids(causal_service, request.prompt, params)


def test_hf_batching_continuous_puts_the_app_model_on_the_loop(causal_model_settings: Settings) -> None:
    causal_model_settings.ENGINES = dataclasses.replace(
        causal_model_settings.ENGINES, engine="auto", batching="continuous"
    )
    model_registry.reset_tracker()
    try:
        service = model_registry.service_for(None)
        assert isinstance(service, NLPService)
        assert isinstance(service.worker().backend, ContinuousBackend)
        assert service_for_again_is_the_same(service)
        assert service.generate("Hello world!", GenerationParams(max_new_tokens=5)).output_tokens >= 1
    finally:
        choice.reset_engine_services()
        model_registry.reset_tracker()
        nlp_service.reset_services()


def service_for_again_is_the_same(service: NLPService) -> bool:
    again = model_registry.service_for(None)
    return again is service and isinstance(again.worker().backend, ContinuousBackend)


def test_bad_batching_value_names_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        engine_settings(
            engine="auto",
            model="",
            openai_base_url="",
            openai_api_key="",
            openai_api="chat",
            llama_server_bin="",
            llama_slots="",
            llama_ctx="",
            batching="dynamic",
        )
    assert str(caught.value) == "HF_BATCHING='dynamic' is not allowed: use one of static, continuous."
