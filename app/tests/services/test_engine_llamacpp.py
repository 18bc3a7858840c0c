"""The llamacpp engine against the real llama-server on the bundled GGUF file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from app.domain.generation import GenerationParams
from app.domain.streams import StreamEvent
from app.errors import ModelUnavailable
from app.services.engines.llama_build import LlamaBinary
from app.services.engines.llamacpp import LlamaCppService
from app.services.engines.sidecar import SIDECAR_RESTARTING
from app.services.engines.worker import InferenceRequest
from app.tests.engine_fixtures import make_llama_service
from django_hf_ml.choices import BUNDLED_MODEL_ID

GREEDY = GenerationParams(max_new_tokens=24, do_sample=False)
LONG = GenerationParams(max_new_tokens=400, do_sample=False)
STORY = "Write a very long story about a dragon who learns to bake bread."


def _collect(request: InferenceRequest, timeout: float = 60.0) -> list[StreamEvent]:
    return list(request.events(timeout=timeout))


def _slots_busy(base_url: str) -> list[bool]:
    with urllib.request.urlopen(f"{base_url}/slots", timeout=5) as response:  # noqa: S310 (loopback)
        return [bool(slot.get("is_processing")) for slot in json.loads(response.read())]


def test_streams_the_answer_token_by_token(llama_service: LlamaCppService) -> None:
    request = llama_service.submit("What is the capital of France?", GREEDY)
    events = _collect(request)
    kinds = [event.kind for event in events]
    assert kinds[0] == "queued" and kinds[-1] == "done"
    tokens = [event.text for event in events if event.kind == "token"]
    assert len(tokens) >= 3
    result = request.wait(1)
    assert "".join(tokens) == result.text
    assert result.model == BUNDLED_MODEL_ID
    assert result.task == "text-generation"
    assert result.prompt_tokens > 0
    assert 1 <= result.output_tokens <= 24
    assert result.finish_reason in ("stop", "length")


def test_greedy_answers_are_deterministic(llama_service: LlamaCppService) -> None:
    first = llama_service.generate("Name three colours.", GREEDY)
    second = llama_service.generate("Name three colours.", GREEDY)
    assert first.text == second.text
    assert first.text


def test_max_new_tokens_caps_the_answer(llama_service: LlamaCppService) -> None:
    result = llama_service.generate(STORY, GenerationParams(max_new_tokens=5, do_sample=False))
    assert (result.output_tokens, result.finish_reason) == (5, "length")


def test_seeded_sampling_is_reproducible(llama_service: LlamaCppService) -> None:
    params = GenerationParams(max_new_tokens=16, do_sample=True, temperature=1.0, top_p=0.95, top_k=50, seed=7)
    first = llama_service.generate("Tell me a fun fact.", params)
    second = llama_service.generate("Tell me a fun fact.", params)
    assert first.text == second.text


def test_stop_ends_the_stream_within_about_one_token(llama_service: LlamaCppService) -> None:
    request = llama_service.submit(STORY, LONG)
    after_cancel = 0
    cancelled = False
    for event in request.events(timeout=60):
        if event.kind == "token":
            if cancelled:
                after_cancel += 1
            elif len(request.result.text if request.result else "") == 0:
                request.cancel()
                cancelled = True
    result = request.wait(5)
    assert result.finish_reason == "cancelled"
    assert after_cancel <= 1
    assert result.output_tokens <= 3
    deadline = time.monotonic() + 2
    while any(_slots_busy(llama_service.sidecar.base_url)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_slots_busy(llama_service.sidecar.base_url)), "llama-server kept generating after Stop"


def test_eight_concurrent_clients_are_served_together(llama_service: LlamaCppService) -> None:
    prompts = [f"Write a short poem about the number {n}." for n in range(8)]
    requests = [llama_service.submit(prompt, GenerationParams(max_new_tokens=48)) for prompt in prompts]
    streamed: dict[str, str] = {}

    def consume(request: InferenceRequest) -> None:
        streamed[request.id] = "".join(e.text for e in request.events(timeout=60) if e.kind == "token")

    threads = [threading.Thread(target=consume, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    results = [request.wait(1) for request in requests]
    assert all(result.text and result.output_tokens > 0 for result in results)
    assert [streamed[request.id] for request in requests] == [result.text for result in results]
    first_done = min(
        request.enqueued_at + result.total_seconds for request, result in zip(requests, results, strict=True)
    )
    started_before = sum(1 for request in requests if request.first_token_at and request.first_token_at < first_done)
    assert started_before >= 4, "requests ran one after another instead of in parallel slots"


def test_long_prompt_beyond_the_context_is_a_clear_error(llama_service: LlamaCppService) -> None:
    words = " ".join(f"word{n}" for n in range(3000))  # ~ 6000 tokens > 1024 per slot
    request = llama_service.submit(words, GREEDY)
    events = _collect(request)
    assert events[-1].kind == "error"
    assert "refused the request" in events[-1].text
    assert "context" in events[-1].text


def test_killed_sidecar_gives_503_then_recovers(llama_binary: LlamaBinary, bundled_gguf: Path, tmp_path: Path) -> None:
    service = make_llama_service(llama_binary, bundled_gguf, tmp_path, slots=2)
    try:
        service.warm_up()
        first_pid = service.sidecar.pid
        assert first_pid is not None
        in_flight = service.submit(STORY, LONG)
        assert next(e for e in in_flight.events(timeout=30) if e.kind in ("token", "error")).kind == "token"
        os.kill(first_pid, signal.SIGKILL)
        events = _collect(in_flight, timeout=10)
        assert events[-1].kind == "error"
        assert events[-1].text == SIDECAR_RESTARTING.format(model=BUNDLED_MODEL_ID)

        with pytest.raises(ModelUnavailable) as refused:
            service.generate("Hello?", GREEDY)
        assert refused.value.message == SIDECAR_RESTARTING.format(model=BUNDLED_MODEL_ID)

        deadline = time.monotonic() + 30
        while not (service.sidecar.running and service.sidecar.restarts) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.sidecar.restarts == 1
        assert service.sidecar.pid != first_pid
        assert service.generate("Hello?", GREEDY).text
    finally:
        service.close()
    assert not service.sidecar.running


def test_unload_stops_the_sidecar_and_the_next_request_starts_it(
    llama_binary: LlamaBinary, bundled_gguf: Path, tmp_path: Path
) -> None:
    service = make_llama_service(llama_binary, bundled_gguf, tmp_path, slots=1)
    try:
        assert not service.is_loaded
        assert service.generate("Hi", GenerationParams(max_new_tokens=4)).output_tokens > 0
        assert service.is_loaded and service.memory_bytes() > 50 * 2**20
        service.unload()
        assert not service.is_loaded and service.memory_bytes() == 0
        assert service.generate("Hi", GenerationParams(max_new_tokens=4)).output_tokens > 0
        assert service.sidecar.restarts == 0
    finally:
        service.close()


ORPHAN_SCRIPT = """
import sys, time
from pathlib import Path
from app.services.engines.sidecar import LlamaSidecar, SidecarConfig
config = SidecarConfig(binary=Path(sys.argv[1]), model_path=Path(sys.argv[2]), threads=1, slots=1, ctx=512,
                       log_file=Path(sys.argv[3]))
sidecar = LlamaSidecar(config)
sidecar.ensure_started()
print(sidecar.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_sidecar_does_not_outlive_a_killed_app(llama_binary: LlamaBinary, bundled_gguf: Path, tmp_path: Path) -> None:
    app = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(llama_binary.path), str(bundled_gguf), str(tmp_path / "log")],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert app.stdout is not None
    sidecar_pid = int(app.stdout.readline())
    assert _alive(sidecar_pid)
    app.kill()
    app.wait(10)
    deadline = time.monotonic() + 10
    while _alive(sidecar_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(sidecar_pid), "llama-server kept running after the app was killed"


def test_unload_waits_while_an_answer_is_streaming(llama_service: LlamaCppService) -> None:
    request = llama_service.submit(STORY, LONG)
    assert next(e for e in request.events(timeout=30) if e.kind in ("token", "error")).kind == "token"
    llama_service.unload()  # e.g. the memory budget: must not cut a visitor's answer off
    assert llama_service.is_loaded
    request.cancel()
    assert request.wait(5).finish_reason == "cancelled"


def test_a_follow_up_is_measured_in_the_servers_own_tokens(llama_service: LlamaCppService) -> None:
    from app.domain.generation import ChatTurn
    from app.services.context_window import fit, meter_for

    meter = meter_for(llama_service)
    assert meter.exact and meter.limit == llama_service.sidecar.config.ctx // llama_service.sidecar.config.slots
    turns = [ChatTurn("user", "Hi there"), ChatTurn("assistant", "Hello!"), ChatTurn("user", "What?")]
    counted = meter.count(turns)
    # What the server reports for the same conversation once it generates from it:
    request = llama_service.submit("What?", GenerationParams(max_new_tokens=1, do_sample=False), messages=turns)
    assert counted == request.wait().prompt_tokens
    # A conversation longer than the slot's window: the oldest pairs are left out until it fits.
    long_turns = [ChatTurn(role, "word " * 200) for _ in range(20) for role in ("user", "assistant")]
    dropped = fit(meter, long_turns, ChatTurn("user", "And now?"), max_new_tokens=64)
    kept = [*long_turns[dropped * 2 :], ChatTurn("user", "And now?")]
    assert 0 < dropped < 20 and meter.count(kept) <= meter.limit - 64
