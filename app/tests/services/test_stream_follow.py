"""Following a generation that another process runs: the record in the store (change stream or polling)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from app.domain.interaction import Scope
from app.errors import STREAM_NOT_FOUND
from app.services import stream_taps
from app.services.stream_follow import FeedEvent, RunningAnswer, answer_for_page, follow
from app.tests.async_feed import feed_loop
from app.tests.generating_record import GeneratingRecord

pytestmark = pytest.mark.usefixtures("store_settings")

SCOPE = Scope(session_id="follower")


@pytest.fixture(autouse=True)
def _fresh_taps() -> Iterator[None]:
    yield
    stream_taps.reset_taps()


def collect(feed_id: str, scope: Scope = SCOPE, offset: int = 0) -> Future[list[FeedEvent]]:
    """Follow ``feed_id`` in the background (on an event loop, as the server does)."""

    async def run() -> list[FeedEvent]:
        return [event async for event in follow(feed_id, scope, offset=offset, keepalive=0.2)]

    return asyncio.run_coroutine_threadsafe(run(), feed_loop())


def result(future: Future[list[FeedEvent]]) -> list[FeedEvent]:
    return future.result(timeout=20)


def texts(events: list[FeedEvent]) -> str:
    return "".join(event.text for event in events if event.kind == "text")


def test_a_pending_record_is_followed_until_it_ends() -> None:
    record = GeneratingRecord(SCOPE, output="Once")
    events = collect(record.id)
    for word in (" upon", " a", " time"):
        time.sleep(0.3)
        record.write(word)
    record.end()
    got = result(events)
    assert texts(got) == "Once upon a time"
    assert [e.offset for e in got if e.kind == "text"][-1] == len("Once upon a time")
    end = got[-1]
    assert end.kind == "end" and end.interaction is not None
    assert end.interaction.status == "ok" and end.interaction.output == "Once upon a time"


def test_a_resumed_feed_gets_only_the_text_it_misses() -> None:
    record = GeneratingRecord(SCOPE, output="Hello wor")
    events = collect(record.id, offset=6)
    time.sleep(0.3)
    record.write("ld")
    record.end()
    got = result(events)
    assert texts(got) == "world"
    assert [(e.text, e.offset) for e in got if e.kind == "text"][0] == ("wor", 9)


def test_two_feeds_of_one_record_share_one_follower_and_see_the_same_text() -> None:
    record = GeneratingRecord(SCOPE)
    first, second = collect(record.id), collect(record.id)
    time.sleep(0.3)
    record.write("same for both")
    time.sleep(0.3)
    record.end("cancelled")
    one, two = result(first), result(second)
    assert texts(one) == texts(two) == "same for both"
    assert one[-1].interaction is not None and one[-1].interaction.status == "cancelled"


def test_an_interrupted_record_ends_the_feed_with_its_partial_text() -> None:
    record = GeneratingRecord(SCOPE, output="Cut sh")
    events = collect(record.id)
    time.sleep(0.3)
    record.end("interrupted")
    got = result(events)
    assert texts(got) == "Cut sh"
    assert got[-1].interaction is not None and got[-1].interaction.status == "interrupted"


def test_another_visitor_cannot_follow_the_record() -> None:
    record = GeneratingRecord(SCOPE, output="secret")
    got = result(collect(record.id, Scope(session_id="someone-else")))
    assert [(e.kind, e.problem) for e in got] == [("end", STREAM_NOT_FOUND)]
    record.end()


def test_a_finished_record_ends_the_feed_at_once() -> None:
    record = GeneratingRecord(SCOPE, output="done already")
    record.end()
    got = result(collect(record.id))
    assert [e.kind for e in got] == ["end"]


def test_the_page_shows_a_pending_record_as_running_with_its_text_so_far() -> None:
    record = GeneratingRecord(SCOPE, prompt="Reload me", output="So far")
    found = answer_for_page(scope=SCOPE, answer_id=record.id)
    assert found == RunningAnswer(id=record.id, prompt="Reload me", text="So far")
    assert found.offset == 6
    record.end()
    assert answer_for_page(scope=SCOPE, answer_id=record.id).status == "ok"  # type: ignore[union-attr]


def test_change_streams_are_detected_at_run_time() -> None:
    stream_taps.reset_change_stream_probe()
    supported = stream_taps.change_streams_supported()
    assert isinstance(supported, bool)  # SecantusDB 0.7 and replica sets: True; a lone mongod: False (polling)
    assert stream_taps.change_streams_supported() is supported  # probed once per process
    stream_taps.reset_change_stream_probe()


def test_without_change_streams_the_record_is_polled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_taps, "change_streams_supported", lambda: False)  # e.g. a lone mongod
    record = GeneratingRecord(SCOPE, output="Poll")
    events = collect(record.id)
    time.sleep(0.3)
    record.write("ed")
    time.sleep(0.3)
    record.end()
    got = result(events)
    assert texts(got) == "Polled"
    assert got[-1].interaction is not None and got[-1].interaction.status == "ok"
