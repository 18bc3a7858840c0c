"""The openai engine: parameter mapping, a real OpenAI-compatible server (llama-server), upstream failures."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.domain.generation import GenerationParams
from app.errors import InvalidPrompt, ModelUnavailable, TooManyRequests
from app.services.engines.openai_compat import OpenAIBackend, OpenAIService
from app.services.engines.openai_wire import (
    UPSTREAM_BUSY,
    UPSTREAM_TIMEOUT,
    openai_parameters,
    retry_after_seconds,
    sse_events,
)
from app.services.local_store import free_port

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GREEDY = GenerationParams(max_new_tokens=24, do_sample=False)


def _service(url: str, *, api: str = "chat", timeout: float = 30.0, **kwargs: object) -> OpenAIService:
    backend = OpenAIBackend(name=url, model=MODEL, base_url=lambda: url, api=api, timeout=timeout, **kwargs)  # type: ignore[arg-type]
    return OpenAIService(model=MODEL, backend=backend)


# --- Parameter mapping -------------------------------------------------------------------------


def test_greedy_maps_to_temperature_zero() -> None:
    call = openai_parameters(GenerationParams(max_new_tokens=12, do_sample=False, temperature=0.9, top_p=0.5))
    assert call.fields == {"max_tokens": 12, "temperature": 0.0, "top_p": 1.0}
    assert call.extra_body == {}


def test_sampling_maps_temperature_top_p_and_seed() -> None:
    params = GenerationParams(max_new_tokens=30, do_sample=True, temperature=0.8, top_p=0.9, top_k=20, seed=42)
    call = openai_parameters(params)
    assert call.fields == {"max_tokens": 30, "temperature": 0.8, "top_p": 0.9, "seed": 42}
    assert call.extra_body == {}  # top_k is not an OpenAI API field: never sent to a plain server


def test_stop_sequences_are_sent_at_most_four() -> None:
    call = openai_parameters(GenerationParams(), stop=["a", "b", "c", "d", "e"])
    assert call.fields["stop"] == ["a", "b", "c", "d"]


def test_extended_sampling_adds_llama_cpp_fields() -> None:
    params = GenerationParams(do_sample=True, top_k=20, repetition_penalty=1.3)
    call = openai_parameters(params, extended_sampling=True)
    assert call.extra_body == {"top_k": 20, "min_p": 0.0, "repeat_penalty": 1.3, "repetition_penalty": 1.3}
    greedy = openai_parameters(GenerationParams(), extended_sampling=True)
    assert greedy.extra_body == {"top_k": 1, "min_p": 0.0}


def test_retry_after_header_parsing() -> None:
    assert [retry_after_seconds(v) for v in ("7", "0.2", None, "Wed, 21 Oct 2015 07:28:00 GMT")] == [7, 1, 1, 1]


# --- A real OpenAI-compatible server: llama-server ---------------------------------------------


def test_chat_completions_stream_from_a_real_server(llama_url: str) -> None:
    service = _service(f"{llama_url}/v1")
    try:
        request = service.submit("What is the capital of France?", GREEDY)
        events = list(request.events(timeout=60))
        result = request.wait(1)
        tokens = [event.text for event in events if event.kind == "token"]
        assert events[-1].kind == "done"
        assert len(tokens) >= 3 and "".join(tokens) == result.text
        assert result.model == MODEL
        assert result.prompt_tokens > 0 and result.output_tokens > 0
    finally:
        service.unload()


def test_raw_completions_stream_from_a_real_server(llama_url: str) -> None:
    service = _service(llama_url, api="completions")
    try:
        result = service.generate("The capital of France is", GenerationParams(max_new_tokens=8))
        assert result.text
        assert (result.output_tokens, result.finish_reason) == (8, "length")
    finally:
        service.unload()


def test_stop_sequence_ends_the_answer(llama_url: str) -> None:
    service = _service(llama_url, stop=[" "])
    try:
        result = service.generate("Write a sentence about cats.", GenerationParams(max_new_tokens=30))
        assert result.text and " " not in result.text
        assert result.finish_reason == "stop"
    finally:
        service.unload()


def test_seed_reaches_the_server(llama_url: str) -> None:
    service = _service(llama_url)
    sampled = GenerationParams(max_new_tokens=16, do_sample=True, temperature=1.2, seed=3)
    try:
        assert service.generate("Say something.", sampled).text == service.generate("Say something.", sampled).text
    finally:
        service.unload()


def test_stop_closes_the_upstream_stream(llama_url: str) -> None:
    service = _service(llama_url)
    try:
        request = service.submit("Write a very long story.", GenerationParams(max_new_tokens=400))
        for event in request.events(timeout=60):
            if event.kind == "token":
                request.cancel()
        result = request.wait(5)
        assert result.finish_reason == "cancelled" and result.output_tokens <= 3
    finally:
        service.unload()


# --- Upstream failures -------------------------------------------------------------------------


class _Reply(BaseHTTPRequestHandler):
    status = 500
    headers_out: dict[str, str] = {}
    delay = 0.0

    stream_body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(self.delay)
        body = b'{"error": {"message": "upstream says no", "type": "server_error"}}'
        if self.stream_body:
            body = self.stream_body
            self.headers_out = {**self.headers_out, "content-type": "text/event-stream"}
        self.send_response(self.status)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        if "content-type" not in self.headers_out:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up first (the timeout test)
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[type[_Reply]]:
    """A local HTTP server answering every POST with ``handler.status`` (set by the test)."""
    handler = type("Reply", (_Reply,), {"headers_out": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def test_upstream_429_is_too_many_requests_with_retry_after(stand_in: type[_Reply]) -> None:
    stand_in.status, stand_in.headers_out = 429, {"retry-after": "7"}
    url = stand_in.url  # type: ignore[attr-defined]
    with pytest.raises(TooManyRequests) as caught:
        _service(url).generate("Hi", GREEDY)
    assert caught.value.retry_after == 7
    assert caught.value.message == UPSTREAM_BUSY.format(url=url, seconds=7)


def test_upstream_5xx_is_model_unavailable(stand_in: type[_Reply]) -> None:
    stand_in.status = 503
    with pytest.raises(ModelUnavailable, match=r"did not answer: HTTP 503"):
        _service(stand_in.url).generate("Hi", GREEDY)  # type: ignore[attr-defined]


def test_upstream_400_is_a_refused_prompt(stand_in: type[_Reply]) -> None:
    stand_in.status = 400
    with pytest.raises(InvalidPrompt, match=r"refused the request: HTTP 400"):
        _service(stand_in.url).generate("Hi", GREEDY)  # type: ignore[attr-defined]


def test_slow_upstream_hits_the_timeout(stand_in: type[_Reply]) -> None:
    stand_in.delay = 2.0
    url = stand_in.url  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        _service(url, timeout=0.5).generate("Hi", GREEDY)
    assert caught.value.message == UPSTREAM_TIMEOUT.format(url=url, seconds="0.5")
    assert time.monotonic() - started < 1.8


def test_nothing_listening_is_model_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelUnavailable, match=r"did not answer: cannot connect"):
        _service(url).generate("Hi", GREEDY)


def test_an_error_inside_the_stream_is_model_unavailable(stand_in: type[_Reply]) -> None:
    stand_in.status = 200
    stand_in.stream_body = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
        b'data: {"error": {"message": "slot crashed", "code": 500}}\n\n'
    )
    with pytest.raises(ModelUnavailable, match=r"did not answer: slot crashed"):
        _service(stand_in.url).generate("Hi", GREEDY)  # type: ignore[attr-defined]


def test_sse_lines_are_parsed_up_to_done() -> None:
    lines = iter(['data: {"a": 1}', "", ": keep-alive comment", 'data:{"b": 2}', "data: [DONE]", 'data: {"c": 3}'])
    assert list(sse_events(lines)) == [{"a": 1}, {"b": 2}]


def test_requests_after_the_keep_alive_timeout_still_work(llama_url: str) -> None:
    service = _service(llama_url)
    try:
        assert service.generate("Hi", GenerationParams(max_new_tokens=3)).output_tokens > 0
        time.sleep(5.5)  # llama-server closes idle keep-alive connections after 5 s
        assert service.generate("Hi again", GenerationParams(max_new_tokens=3)).output_tokens > 0
    finally:
        service.unload()
