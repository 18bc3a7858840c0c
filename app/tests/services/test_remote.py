"""Remote inference through huggingface_hub's InferenceClient against a local stand-in TGI server.

The stand-in speaks what ``InferenceClient.text_generation`` sends to an endpoint URL: a POST of
``{"inputs", "parameters", "stream"}`` answered with Server-Sent Events of TGI's token objects
(``stream: true``) or with ``[{"generated_text": …}]``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import GenerationParams
from app.errors import ModelUnavailable
from app.services import generation, model_registry
from app.services.engines import tgi as remote
from app.services.engines.tgi import RemoteService, tgi_parameters

TOKEN = "hf_test_token_123456"


@dataclass
class StandIn:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    token_delay: float = 0.0
    status: int = 200
    closed_early: threading.Event = field(default_factory=threading.Event)


def answer_words(prompt: str, limit: int) -> list[str]:
    words = f"Remote answer to: {prompt}".split(" ")
    return [(" " if index else "") + word for index, word in enumerate(words)][:limit]


def make_handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802  (http.server naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.authorizations.append(self.headers.get("Authorization"))  # case-insensitive lookup
            if state.status != 200:
                self._json(state.status, {"error": "Model is overloaded", "error_type": "overloaded"})
                return
            words = answer_words(body["inputs"], body["parameters"].get("max_new_tokens", 20))
            if body.get("stream"):
                self._stream(words)
            else:
                self._json(200, [{"generated_text": "".join(words)}])

        def _json(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, words: list[str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for index, word in enumerate(words):
                    last = index == len(words) - 1
                    event = {
                        "index": index + 1,
                        "token": {"id": index, "text": word, "logprob": -0.5, "special": False},
                        "generated_text": "".join(words) if last else None,
                        "details": {"finish_reason": "length", "generated_tokens": len(words), "seed": None}
                        if last
                        else None,
                    }
                    self.wfile.write(f"data:{json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(state.token_delay)
            except (BrokenPipeError, ConnectionResetError):
                state.closed_early.set()
            self.close_connection = True

    return Handler


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(StandIn(url="")))
    state = StandIn(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = make_handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def remote_settings(app_settings: SettingsWrapper, stand_in: StandIn) -> Iterator[SettingsWrapper]:
    app_settings.HF_ENDPOINT_URL = stand_in.url
    app_settings.HF_API_TOKEN = TOKEN
    yield app_settings
    remote.reset_remote_services()
    generation.reset_streams()
    model_registry.reset_tracker()


def test_streamed_tokens_and_final_text_come_from_the_endpoint(stand_in: StandIn) -> None:
    service = RemoteService(url=stand_in.url, token=TOKEN)
    request = service.submit("Hi there", GenerationParams(max_new_tokens=20))
    tokens = [event.text for event in request.events(timeout=30) if event.kind == "token"]
    result = request.wait(30)
    assert tokens == ["Remote", " answer", " to:", " Hi", " there"]
    assert result.text == "Remote answer to: Hi there"
    assert (result.output_tokens, result.finish_reason, result.model) == (5, "length", stand_in.url)
    service.unload()


def test_parameters_and_token_reach_the_endpoint(stand_in: StandIn) -> None:
    service = RemoteService(url=stand_in.url, token=TOKEN)
    params = GenerationParams(max_new_tokens=3, do_sample=True, temperature=0.5, top_p=0.9, top_k=7, seed=11)
    service.generate("Hi", params)
    [sent] = stand_in.requests
    assert sent["inputs"] == "Hi" and sent["stream"] is True
    assert sent["parameters"] == {
        "details": True,
        "do_sample": True,
        "max_new_tokens": 3,
        "seed": 11,
        "temperature": 0.5,
        "top_k": 7,
        "top_p": 0.9,
    }
    assert stand_in.authorizations == [f"Bearer {TOKEN}"]
    service.unload()


def test_greedy_parameters_leave_out_sampling_knobs_tgi_would_reject() -> None:
    assert tgi_parameters(GenerationParams(max_new_tokens=5)) == {"max_new_tokens": 5, "do_sample": False}
    assert "top_p" not in tgi_parameters(GenerationParams(do_sample=True, top_p=1.0, top_k=0))


def test_cancel_closes_the_remote_stream(stand_in: StandIn) -> None:
    stand_in.token_delay = 0.05
    service = RemoteService(url=stand_in.url, token=TOKEN)
    request = service.submit(" ".join(["word"] * 200), GenerationParams(max_new_tokens=200))
    for event in request.events(timeout=30):
        if event.kind == "token":
            request.cancel()
    result = request.wait(30)
    assert result.finish_reason == "cancelled"
    assert result.text.startswith("Remote")
    assert stand_in.closed_early.wait(10)
    service.unload()


def test_endpoint_errors_become_a_clear_model_unavailable(stand_in: StandIn) -> None:
    stand_in.status = 503
    service = RemoteService(url=stand_in.url, token=TOKEN)
    with pytest.raises(ModelUnavailable) as failed:
        service.generate("Hi", GenerationParams(max_new_tokens=2))
    assert failed.value.message.startswith(f"The remote endpoint {stand_in.url} did not answer: ")
    assert "Check HF_ENDPOINT_URL and HF_API_TOKEN" in failed.value.message
    assert TOKEN not in failed.value.message
    service.unload()


def test_unreachable_endpoint_is_reported_not_raised_as_500(client: Client, app_settings: SettingsWrapper) -> None:
    from app.tests.conftest import free_port

    app_settings.HF_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    try:
        response = client.post("/api/generate", {"prompt": "Hi"}, content_type="application/json")
    finally:
        remote.reset_remote_services()
    assert response.status_code == 503
    assert "did not answer" in response.json()["error"]


@pytest.mark.usefixtures("remote_settings")
def test_the_page_streams_a_remote_answer_and_records_it(client: Client, stand_in: StandIn) -> None:
    from app.tests.views.test_stream import HTMX, all_events, stored, stream_id

    response = client.post("/stream/", {"prompt": "From afar", "max_new_tokens": "10"}, **HTMX)
    events = all_events(client, stream_id(response))
    assert "".join(data for kind, data in events if kind == "token") == "Remote answer to: From afar"
    [doc] = stored("From afar")
    assert (doc["model"], doc["output"], doc["status"]) == (stand_in.url, "Remote answer to: From afar", "ok")


@pytest.mark.usefixtures("remote_settings")
def test_the_api_uses_the_remote_endpoint_by_default(client: Client, stand_in: StandIn) -> None:
    response = client.post(
        "/api/generate", {"prompt": "API far", "params": {"max_new_tokens": 10}}, content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["output"] == "Remote answer to: API far"
    assert response.json()["model"] == stand_in.url
