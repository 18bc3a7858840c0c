"""Streaming page endpoints: start, SSE feed, stop, closed client, regenerate, cache, limits, model picker."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import GenerationParams
from app.errors import MODEL_NOT_OFFERED, PROMPT_EMPTY, STREAM_NOT_FOUND
from app.services import answer_cache, generation, model_registry
from app.services.engines.transformers_batch import LocalBackend
from app.services.model_registry import service_for
from app.services.mongo_repo import get_repository
from app.tests.async_feed import FeedChunks
from app.tests.services.test_inference import SlowNoEos

pytestmark = pytest.mark.usefixtures("app_settings")

HTMX = {"HTTP_HX_REQUEST": "true"}
EVENT = re.compile(r"event: (\w+)\n((?:data: .*\n)+)\n")


@pytest.fixture(autouse=True)
def _fresh_serving_state(fresh_generation_state: None) -> Iterator[None]:
    yield
    model_registry.reset_tracker()
    LocalBackend.extra_logits_processors = ()


@pytest.fixture
def slow_model() -> None:
    """Every step sleeps a little and never ends the answer early, so a stream can be stopped mid-way."""
    service = service_for(None)
    service.warm_up()  # type: ignore[attr-defined]
    eos = sorted(service.loaded_model().eos_token_ids)  # type: ignore[attr-defined]
    LocalBackend.extra_logits_processors = (SlowNoEos(eos, delay=0.01),)


def start(client: Client, prompt: str = "Hello", **fields: str) -> Any:
    return client.post("/stream/", {"prompt": prompt, "max_new_tokens": "6", **fields}, **HTMX)


def stream_id(response: Any) -> str:
    found = re.search(r'data-stream-id="([0-9a-f]+)"', response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def parse_events(response: Any) -> Iterator[tuple[str, str]]:
    buffer = ""
    for chunk in FeedChunks(response) if not isinstance(response, FeedChunks) else response:
        buffer += chunk.decode()
        while (match := EVENT.search(buffer)) is not None:
            data = "\n".join(line[len("data: ") :] for line in match.group(2).splitlines())
            buffer = buffer[match.end() :]
            yield match.group(1), data


def all_events(client: Client, sid: str) -> list[tuple[str, str]]:
    response = client.get(f"/stream/{sid}/events")
    return list(parse_events(response))


def stored(prompt: str) -> list[dict[str, Any]]:
    return list(get_repository().collection.find({"prompt": prompt}).sort("created_at", 1))


# --- Start and feed ----------------------------------------------------------------------------


def test_htmx_start_returns_a_fragment_that_opens_the_event_feed(client: Client) -> None:
    response = start(client)
    assert response.status_code == 200
    body = response.content.decode()
    sid = stream_id(response)
    assert f'sse-connect="/stream/{sid}/events"' in body
    assert f'action="/stream/{sid}/stop"' in body
    assert "<html" not in body


def test_feed_streams_tokens_then_done_and_the_record_matches(client: Client) -> None:
    events = all_events(client, stream_id(start(client, "Stream me")))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "queued" and "started" in kinds and kinds[-1] == "done"
    streamed = html.unescape("".join(data for kind, data in events if kind == "token"))
    [doc] = stored("Stream me")
    assert doc["status"] == "ok"
    assert doc["output"] == streamed
    assert f'data-interaction-id="{doc["_id"]}"' in events[-1][1]
    assert 'hx-swap-oob="afterbegin:#recent-list"' in events[-1][1]


def test_feed_response_is_an_uncached_event_stream(client: Client) -> None:
    response = client.get(f"/stream/{stream_id(start(client))}/events")
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    list(FeedChunks(response))


def test_a_reconnect_after_the_end_gets_the_final_answer(client: Client) -> None:
    sid = stream_id(start(client, "Reconnect"))
    all_events(client, sid)
    [(kind, data)] = all_events(client, sid)
    [doc] = stored("Reconnect")
    assert kind == "done" and f'data-interaction-id="{doc["_id"]}"' in data


def test_parameters_are_validated_next_to_the_field(client: Client) -> None:
    response = start(client, temperature="5", top_k="-1")
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#prompt-form"
    body = response.content.decode()
    assert "temperature must be a number greater than 0 and at most 2." in body
    assert "top_k must be a whole number between 0 and 1000." in body


def test_beam_search_is_refused_for_the_causal_default_model(client: Client) -> None:
    body = start(client, num_beams="2").content.decode()
    assert "num_beams must be 1 for text-generation models." in body


def test_empty_prompt_is_refused_with_the_form(client: Client) -> None:
    response = start(client, "  ")
    assert response.status_code == 422
    assert PROMPT_EMPTY in response.content.decode()


def test_all_parameters_are_stored_with_the_interaction(client: Client) -> None:
    fields = {"top_k": "7", "repetition_penalty": "1.3", "seed": "42", "do_sample": "on", "temperature": "0.9"}
    all_events(client, stream_id(start(client, "With params", **fields)))
    [doc] = stored("With params")
    assert doc["params"] == {
        "max_new_tokens": 6,
        "temperature": 0.9,
        "top_p": 1.0,
        "top_k": 7,
        "repetition_penalty": 1.3,
        "num_beams": 1,
        "do_sample": True,
        "seed": 42,
    }


def test_without_javascript_the_stream_url_redirects_to_the_finished_answer(client: Client) -> None:
    response = client.post("/stream/", {"prompt": "No JS", "max_new_tokens": "3"})
    [doc] = stored("No JS")
    assert response.status_code == 303
    assert response["Location"] == f"/?answer={doc['_id']}"


# --- Stop and closed tabs ----------------------------------------------------------------------


@pytest.mark.usefixtures("slow_model")
def test_stop_keeps_the_partial_answer_as_cancelled(client: Client) -> None:
    sid = stream_id(start(client, "Stop me", max_new_tokens="1000"))
    streamed = ""
    stop_status = None
    for kind, data in parse_events(client.get(f"/stream/{sid}/events")):
        if kind == "token":
            streamed += html.unescape(data)
            if stop_status is None:
                stop_status = client.post(f"/stream/{sid}/stop", **HTMX).status_code
        if kind == "done":
            assert "cancelled" in data
    [doc] = stored("Stop me")
    assert stop_status == 204
    assert doc["status"] == "cancelled"
    assert doc["output"] == streamed
    assert 1 <= doc["output_tokens"] < 1000


@pytest.mark.usefixtures("slow_model")
def test_closing_the_feed_does_not_cancel_the_generation(client: Client) -> None:
    sid = stream_id(start(client, "Tab closed", max_new_tokens="40"))
    feed = FeedChunks(client.get(f"/stream/{sid}/events"))
    for kind, _ in parse_events(feed):
        if kind == "token":
            break
    feed.close()  # what the server does when the browser goes away: only Stop cancels
    stream = generation.get_stream(sid, generation_scope(client))
    assert stream.ended.wait(30)
    [doc] = stored("Tab closed")
    assert doc["status"] == "ok"
    assert doc["output_tokens"] == 40


def generation_scope(client: Client) -> Any:
    from app.domain.interaction import Scope

    return Scope(session_id=client.session["visitor_id"])


def test_stop_without_javascript_redirects_to_the_recorded_answer(client: Client) -> None:
    sid = stream_id(start(client, "Stop no JS"))
    all_events(client, sid)
    response = client.post(f"/stream/{sid}/stop")
    [doc] = stored("Stop no JS")
    assert response.status_code == 303
    assert response["Location"] == f"/?answer={doc['_id']}"


def test_unknown_stream_stop_is_404_and_feed_says_it_is_over(client: Client) -> None:
    assert client.post("/stream/ffff/stop").status_code == 404
    events = all_events(client, "ffff")
    assert events == [("done", f'<div class="problem" role="alert">{STREAM_NOT_FOUND}</div>')]


def test_another_visitor_cannot_read_or_stop_a_stream(client: Client, other_client: Client) -> None:
    sid = stream_id(start(client, "Mine only"))
    assert all_events(other_client, sid)[0][1].count(STREAM_NOT_FOUND) == 1
    assert other_client.post(f"/stream/{sid}/stop").status_code == 404
    all_events(client, sid)


# --- Regenerate, reuse, cache ------------------------------------------------------------------


def test_regenerate_makes_a_new_linked_record_from_the_model(client: Client) -> None:
    all_events(client, stream_id(start(client, "Again please")))
    [first] = stored("Again please")
    response = client.post(f"/history/{first['_id']}/regenerate")
    second = stored("Again please")[1]
    assert response.status_code == 303
    assert response["Location"] == f"/?answer={second['_id']}"
    assert second["regenerated_from"] == str(first["_id"])
    assert second["cached"] is False
    assert second["params"] == first["params"]


def test_regenerate_with_htmx_streams(client: Client) -> None:
    all_events(client, stream_id(start(client, "Stream again")))
    [first] = stored("Stream again")
    response = client.post(f"/history/{first['_id']}/regenerate", **HTMX)
    all_events(client, stream_id(response))
    assert stored("Stream again")[1]["regenerated_from"] == str(first["_id"])


def test_regenerate_unknown_interaction_is_404(client: Client) -> None:
    assert client.post("/history/64b7f0f0f0f0f0f0f0f0f0f0/regenerate", **HTMX).status_code == 404


def test_an_answer_fills_the_form_again_to_resend_with_other_parameters(client: Client) -> None:
    all_events(client, stream_id(start(client, "Reuse me", top_k="9")))
    [doc] = stored("Reuse me")
    body = client.get(f"/?answer={doc['_id']}").content.decode()
    assert re.search(r'name="top_k" value="9"', body)
    assert re.search(r'name="max_new_tokens" value="6"', body)
    assert ">Reuse me</textarea>" in body


def test_identical_greedy_request_is_answered_from_the_cache(client: Client) -> None:
    all_events(client, stream_id(start(client, "Cache me")))
    response = start(client, "Cache me")
    body = response.content.decode()
    first, second = stored("Cache me")
    assert "sse-connect" not in body and "cached" in body
    assert second["cached"] is True and first["cached"] is False
    assert second["cached_from"] == str(first["_id"])
    assert second["output"] == first["output"]


def test_sampling_requests_are_never_cached(client: Client) -> None:
    for _ in range(2):
        all_events(client, stream_id(start(client, "Sample me", do_sample="on")))
    assert [doc["cached"] for doc in stored("Sample me")] == [False, False]


def test_cache_falls_back_to_an_earlier_record_in_the_store(client: Client) -> None:
    all_events(client, stream_id(start(client, "Stored answer")))
    answer_cache.reset_cache()  # e.g. after a restart
    start(client, "Stored answer")
    assert stored("Stored answer")[1]["cached"] is True


def test_api_reports_cached_answers(client: Client) -> None:
    body = {"prompt": "API cache", "params": {"max_new_tokens": 3}}
    client.post("/api/generate", body, content_type="application/json")
    again = client.post("/api/generate", body, content_type="application/json").json()
    assert again["cached"] is True


# --- Limits ------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(client: Client, settings: SettingsWrapper) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 1, 1
    all_events(client, stream_id(start(client, "One")))
    response = start(client, "Two")
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "Too many prompts in a short time. Please wait 60 s before sending another one." in response.content.decode()


def test_rate_limit_is_per_visitor(client: Client, other_client: Client, settings: SettingsWrapper) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 1, 1
    all_events(client, stream_id(start(client, "Mine")))
    assert start(other_client, "Theirs").status_code == 200


def test_rate_limit_applies_to_the_api_too(client: Client, settings: SettingsWrapper) -> None:
    settings.RATE_LIMIT_PER_MINUTE, settings.RATE_LIMIT_BURST = 1, 1
    body = {"prompt": "API one", "params": {"max_new_tokens": 2}}
    assert client.post("/api/generate", body, content_type="application/json").status_code == 201
    refused = client.post("/api/generate", {**body, "prompt": "API two"}, content_type="application/json")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.json()["retry_after"] == 60


@pytest.mark.usefixtures("slow_model")
def test_full_queue_answers_429_with_retry_after(
    client: Client, other_client: Client, settings: SettingsWrapper
) -> None:
    settings.HF_QUEUE_MAX = 1
    worker = service_for(None).worker()
    worker.max_queue = 1
    running = stream_id(start(client, "Running", max_new_tokens="1000"))
    while worker.queue_length:  # wait until the worker has taken it
        threading.Event().wait(0.01)
    waiting = stream_id(start(client, "Waiting", max_new_tokens="2"))
    refused = start(other_client, "Refused")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "The model is busy: 1 requests are already waiting." in refused.content.decode()
    client.post(f"/stream/{running}/stop", **HTMX)
    all_events(client, waiting)


def test_queued_request_sees_its_position(client: Client) -> None:
    events = all_events(client, stream_id(start(client)))
    assert events[0] == ("queued", "Waiting in the queue: position 1.")


# --- Model picker ------------------------------------------------------------------------------


def test_model_not_offered_is_refused_next_to_the_picker(client: Client) -> None:
    response = start(client, model="gpt2")
    assert response.status_code == 422
    assert MODEL_NOT_OFFERED in response.content.decode()


def test_picked_model_answers_and_is_recorded(client: Client, settings: SettingsWrapper, tiny_t5_model: Path) -> None:
    settings.HF_MODELS = ((str(tiny_t5_model), "text2text-generation"),)
    assert f'<option value="{tiny_t5_model}"' in client.get("/").content.decode()
    all_events(client, stream_id(start(client, "Use T5", model=str(tiny_t5_model), num_beams="1")))
    [doc] = stored("Use T5")
    assert doc["model"] == str(tiny_t5_model)
    assert doc["task"] == "text2text-generation"


def test_api_accepts_an_offered_model_and_refuses_others(client: Client) -> None:
    refused = client.post("/api/generate", {"prompt": "x", "model": "gpt2"}, content_type="application/json")
    assert refused.status_code == 422
    assert refused.json()["fields"] == {"model": MODEL_NOT_OFFERED}


def test_blocking_generate_still_works_through_the_worker(client: Client) -> None:
    params = GenerationParams(max_new_tokens=3)
    result = service_for(None).generate("Plain call", params)
    assert result.output_tokens <= 3 and result.finish_reason in ("stop", "length")
