"""Following one generation from any process: the text so far, then the live rest, then the end.

The feed id is the generation's id. This process may be the one generating it: then the in-process
stream (``generation.get_stream``) is followed token by token. Otherwise the record is: its
``output`` while ``pending`` is the text so far (``stream_taps.follow_store``). Either way a feed
resumes from a character offset (the SSE event id its client last saw), so a reload, a second tab or
a reconnect to another worker gets exactly the text it is missing, then the live rest.

The local stream is looked up by id first, then the record, so a stream whose id is not (yet) its
record's id is followed too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from app.domain.interaction import STATUS_PENDING, Interaction, Scope
from app.errors import InteractionNotFound, StoreUnavailable, StreamNotFound
from app.services.generation import Stream, get_stream
from app.services.interactions import get_interaction
from app.services.stream_taps import Tap, TapState, follow_store, peek, pump_local, tap_for

FeedEventKind = Literal["status", "text", "end", "keepalive"]


@dataclass(frozen=True)
class FeedEvent:
    """One thing a feed tells its client; ``offset`` is the length of the text sent so far."""

    kind: FeedEventKind
    offset: int
    text: str = ""  # "text": the new characters
    phase: str = ""  # "status": "queued" or "started"
    position: int = 0  # "status" queued: place in the queue
    interaction: Interaction | None = None  # "end": the record, when there is one
    save_error: str | None = None
    problem: str | None = None  # "end" without an answer: why


@dataclass(frozen=True)
class RunningAnswer:
    """A generation still running, as a page shows it: its prompt and the text so far."""

    id: str
    prompt: str
    text: str = ""

    @property
    def offset(self) -> int:
        return len(self.text)


def running(stream: Stream) -> RunningAnswer:
    """The running answer of an in-process stream (the text its feeds have seen so far)."""
    tap = peek(stream.id)
    return RunningAnswer(id=stream.id, prompt=stream.ask.prompt, text=tap.state.text if tap else "")


def answer_for_page(*, scope: Scope, answer_id: str) -> Interaction | RunningAnswer:
    """The finished answer with that id, or the running one; ``InteractionNotFound`` / ``StoreUnavailable``."""
    stream = _local_stream(answer_id, scope)
    if stream is not None:
        if not stream.finished:
            return running(stream)
        if stream.interaction is not None:
            return stream.interaction
    record = get_interaction(scope=scope, interaction_id=answer_id)
    if record.status != STATUS_PENDING:
        return record
    tap = peek(record.id)
    text = tap.state.text if tap is not None and len(tap.state.text) > len(record.output) else record.output
    return RunningAnswer(id=record.id, prompt=record.prompt, text=text)


def open_tap(feed_id: str, scope: Scope) -> Tap:
    """The tap of this visitor's generation ``feed_id``, with one more follower; ``StreamNotFound``."""
    stream = _local_stream(feed_id, scope)
    if stream is not None:
        stream.attached = True
        local = stream
        return tap_for(stream.id, lambda tap: pump_local(tap, local))
    try:
        record = get_interaction(scope=scope, interaction_id=feed_id)
    except (InteractionNotFound, StoreUnavailable):
        raise StreamNotFound() from None
    if record.status == STATUS_PENDING:
        return tap_for(record.id, lambda tap: follow_store(tap, record.id, scope))
    finished = Tap(record.id)  # over already: the feed only says how it ended
    finished.update(ended=True, interaction=record)
    finished.attach()
    return finished


async def follow(feed_id: str, scope: Scope, *, offset: int = 0, keepalive: float = 1.0) -> AsyncIterator[FeedEvent]:
    """The feed events of ``feed_id`` after ``offset`` characters; a ``keepalive`` when idle that long."""
    try:
        tap = await asyncio.to_thread(open_tap, feed_id, scope)
    except StreamNotFound as exc:
        yield FeedEvent("end", offset=offset, problem=exc.message)
        return
    try:
        state = tap.state
        if state.ended:  # a reconnect after the end: the final answer replaces the text
            yield _end(state, offset)
            return
        sent, told = max(offset, 0), ("", 0)
        if sent == 0 and state.phase == "started" and state.position:  # a fresh feed hears the whole story
            yield FeedEvent("status", offset=0, phase="queued", position=state.position)
        while True:
            if (state.phase, state.position) != told and state.phase:
                told = (state.phase, state.position)
                yield FeedEvent("status", offset=sent, phase=state.phase, position=state.position)
            if len(state.text) > sent:
                yield FeedEvent("text", offset=len(state.text), text=state.text[sent:])
                sent = len(state.text)
            if state.ended:
                yield _end(state, sent)
                return
            if not await tap.changed(state.version, keepalive):
                yield FeedEvent("keepalive", offset=sent)
            state = tap.state
    finally:
        tap.detach()


def _end(state: TapState, offset: int) -> FeedEvent:
    return FeedEvent(
        "end", offset=offset, interaction=state.interaction, save_error=state.save_error, problem=state.problem
    )


def _local_stream(stream_id: str, scope: Scope) -> Stream | None:
    try:
        return get_stream(stream_id, scope)
    except StreamNotFound:
        return None
