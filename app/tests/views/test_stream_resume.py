"""Resuming the feed: event ids, Last-Event-ID, ?from=, a second feed, a reload of the running answer."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from django.test import Client

from app.domain.interaction import Scope
from app.services import stream_taps
from app.tests.async_feed import FeedChunks
from app.tests.generating_record import GeneratingRecord
from app.tests.views.test_stream import (  # noqa: F401  (fixtures used by name)
    HTMX,
    _fresh_serving_state,
    parse_events,
    slow_model,
    start,
    stored,
    stream_id,
)

pytestmark = pytest.mark.usefixtures("app_settings", "slow_model")

ID_LINE = re.compile(r"^id: (\d+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _fresh_taps() -> Iterator[None]:
    yield
    stream_taps.reset_taps()


def visitor(client: Client) -> Scope:
    client.get("/")
    return Scope(session_id=client.session["visitor_id"])


def tokens_until(feed: FeedChunks, count: int) -> str:
    text = ""
    for kind, data in parse_events(feed):
        if kind == "token":
            text += html.unescape(data)
            count -= 1
            if count == 0:
                break
    return text


def rest(client: Client, url: str, **headers: str) -> tuple[str, list[tuple[str, str]]]:
    events = list(parse_events(client.get(url, **headers)))
    return html.unescape("".join(data for kind, data in events if kind == "token")), events


def test_every_token_carries_the_offset_of_the_text_so_far_as_its_event_id(client: Client) -> None:
    sid = stream_id(start(client, "Ids please", max_new_tokens="5"))
    raw = b"".join(FeedChunks(client.get(f"/stream/{sid}/events"))).decode()
    [doc] = stored("Ids please")
    ids = [int(found) for found in ID_LINE.findall(raw)]
    assert ids == sorted(ids) and ids[-1] == len(doc["output"])


def test_a_reconnect_with_last_event_id_gets_the_rest_without_duplicates(client: Client) -> None:
    sid = stream_id(start(client, "Resume me", max_new_tokens="30"))
    feed = FeedChunks(client.get(f"/stream/{sid}/events"))
    first = tokens_until(feed, 3)
    feed.close()  # the connection drops; the browser reconnects with the last id it saw
    second, events = rest(client, f"/stream/{sid}/events", HTTP_LAST_EVENT_ID=str(len(first)))
    [doc] = stored("Resume me")
    assert doc["status"] == "ok"
    assert first + second == doc["output"]
    assert events[-1][0] == "done"


def test_from_resumes_the_first_connect_of_a_reloaded_page(client: Client) -> None:
    sid = stream_id(start(client, "From offset", max_new_tokens="20"))
    feed = FeedChunks(client.get(f"/stream/{sid}/events"))
    first = tokens_until(feed, 2)
    feed.close()
    second, _ = rest(client, f"/stream/{sid}/events?from={len(first)}")
    assert first + second == stored("From offset")[0]["output"]


def test_a_second_feed_of_the_same_stream_gets_the_same_text(client: Client) -> None:
    sid = stream_id(start(client, "Two tabs", max_new_tokens="20"))
    one = FeedChunks(client.get(f"/stream/{sid}/events"))
    early = tokens_until(one, 2)
    two_text, _ = rest(client, f"/stream/{sid}/events")  # a second tab, opened mid-way: all of it
    one_text = early + "".join(html.unescape(d) for k, d in parse_events(one) if k == "token")
    assert one_text == two_text == stored("Two tabs")[0]["output"]


def test_reloading_during_a_generation_shows_the_running_answer_and_streams_on(client: Client) -> None:
    response = start(client, "Reload me", max_new_tokens="30")
    sid = stream_id(response)
    assert response["HX-Push-Url"] == f"/?answer={sid}"
    feed = FeedChunks(client.get(f"/stream/{sid}/events"))
    tokens_until(feed, 3)
    feed.close()
    page = client.get(f"/?answer={sid}").content.decode()
    found = re.search(r'sse-connect="/stream/([0-9a-f]+)/events\?from=(\d+)"', page)
    assert found and found.group(1) == sid
    shown = re.search(r'<p class="output" sse-swap="token" hx-swap="beforeend">([^<]*)</p>', page)
    assert shown and len(html.unescape(shown.group(1))) == int(found.group(2)) > 0
    second, _ = rest(client, f"/stream/{sid}/events?from={found.group(2)}")
    assert html.unescape(shown.group(1)) + second == stored("Reload me")[0]["output"]


def test_the_page_of_a_pending_record_renders_its_stream(client: Client) -> None:
    record = GeneratingRecord(visitor(client), prompt="Elsewhere", output="Half an ans")
    page = client.get(f"/?answer={record.id}").content.decode()
    assert f'sse-connect="/stream/{record.id}/events?from=11"' in page
    assert ">Half an ans</p>" in page
    assert f'href="/?answer={record.id}"' in page  # its row in Recent leads to the running answer too
    feed = parse_events(FeedChunks(client.get(f"/stream/{record.id}/events?from=11")))
    assert next(feed)[0] == "started"  # the feed follows the record now
    record.write("swer")
    record.end()
    events = list(feed)
    assert html.unescape("".join(data for kind, data in events if kind == "token")) == "swer"
    assert events[-1][0] == "done" and f'data-interaction-id="{record.id}"' in events[-1][1]


def test_stop_still_reaches_a_stream_followed_after_a_reconnect(client: Client) -> None:
    sid = stream_id(start(client, "Stop later", max_new_tokens="1000"))
    feed = FeedChunks(client.get(f"/stream/{sid}/events"))
    tokens_until(feed, 2)
    feed.close()
    assert client.post(f"/stream/{sid}/stop", **HTMX).status_code == 204
    _, events = rest(client, f"/stream/{sid}/events")
    assert events[-1][0] == "done" and "cancelled" in events[-1][1]
