"""One generation's text so far, shared by every feed of this process that follows it.

A ``Tap`` holds the state a feed needs (the text so far, queued/started, the end and its record) and
wakes the feeds waiting on it. One thread per generation fills it, never one per feed:

* ``pump_local`` drains the in-process ``InferenceRequest`` (its single consumer): this process
  generates the answer, so every token is there the moment the worker emits it.
* ``follow_store`` reads the record in MongoDB (another process generates it): a change stream where
  the server has them (detected once per process at run time), else a read every ``POLL_SECONDS``.

Feeds are asyncio coroutines: they wait on an ``asyncio.Event`` of their own loop, which the filling
thread sets with ``loop.call_soon_threadsafe``; no feed holds a thread or blocks its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from app.domain.interaction import STATUS_PENDING, Interaction, Scope
from app.errors import STREAM_NOT_FOUND, InteractionNotFound, StoreUnavailable
from app.services.generation import Stream
from app.services.interactions import get_interaction
from app.services.mongo_documents import parse_interaction_id
from app.services.mongo_repo import get_repository

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # a record followed without change streams is read this often
IDLE_SECONDS = 5.0  # a store follower with no feed left stops after this long
LOCAL_WAIT_SECONDS = 1.0
END_RECORD_WAIT_SECONDS = 10.0  # how long the end waits for the worker to write the record


@dataclass(frozen=True)
class TapState:
    """What a feed can be told now; ``version`` grows with every change."""

    version: int = 0
    text: str = ""
    phase: str = ""  # "", "queued" or "started"
    position: int = 0
    ended: bool = False
    interaction: Interaction | None = None
    save_error: str | None = None
    problem: str | None = None


class Tap:
    """Thread-safe state of one followed generation, with the asyncio waiters of its feeds."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.followers = 0
        self.ended_at: float | None = None
        self._state = TapState()
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def state(self) -> TapState:
        with self._lock:
            return self._state

    def update(self, **changes: object) -> None:
        """Change the state (from any thread) and wake every feed waiting for a change."""
        with self._lock:
            self._state = dataclasses.replace(self._state, version=self._state.version + 1, **changes)  # type: ignore[arg-type]
            if self._state.ended and self.ended_at is None:
                self.ended_at = time.monotonic()
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that feed's loop has closed: nothing to wake
                loop.call_soon_threadsafe(event.set)

    def append(self, text: str) -> None:
        with self._lock:
            current = self._state.text
        self.update(text=current + text)

    async def changed(self, version: int, timeout: float) -> bool:
        """Wait until the state is newer than ``version``; False when ``timeout`` passed first."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self._state.version != version:
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def attach(self) -> None:
        with self._lock:
            self.followers += 1

    def detach(self) -> None:
        with self._lock:
            self.followers -= 1


# --- filling a tap ----------------------------------------------------------------------------


def pump_local(tap: Tap, stream: Stream) -> None:
    """Relay the in-process request's events into ``tap`` until it ends (runs in its own thread)."""
    request = stream.request
    while request is not None:
        event = request.next_event(timeout=LOCAL_WAIT_SECONDS)
        if event is None:
            if request.finished and stream.finished:  # the end was consumed before this tap existed
                break
            continue
        if event.kind == "token":
            tap.append(event.text)
        elif event.kind == "queued":
            tap.update(phase="queued", position=event.position)
        elif event.kind == "started":
            tap.update(phase="started")
        else:
            break
    stream.ended.wait(END_RECORD_WAIT_SECONDS)
    tap.update(ended=True, interaction=stream.interaction, save_error=stream.store_error)


def follow_store(tap: Tap, interaction_id: str, scope: Scope) -> None:
    """Mirror the record into ``tap`` until it leaves ``pending`` or nobody follows it (own thread)."""
    idle_since: float | None = None
    with _change_waiter(interaction_id) as wait:
        while not _read_record(tap, interaction_id, scope):
            if tap.followers > 0:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_SECONDS and _release_if_idle(tap):
                return
            wait()


def _read_record(tap: Tap, interaction_id: str, scope: Scope) -> bool:
    """One read of the record into ``tap``; True once the tap has ended."""
    try:
        record = get_interaction(scope=scope, interaction_id=interaction_id)
    except InteractionNotFound:
        tap.update(ended=True, problem=STREAM_NOT_FOUND)
        return True
    except StoreUnavailable as exc:
        logger.warning("Following %s: %s; retrying", interaction_id, exc.message)
        time.sleep(1.0)
        return False
    state = tap.state
    text = record.output
    if text != state.text and text.startswith(state.text):  # the record only ever grows while pending
        tap.update(text=text, phase="started")
    elif record.output and state.phase != "started":
        tap.update(phase="started")
    if record.status == STATUS_PENDING:
        return False
    tap.update(ended=True, interaction=record)
    return True


# --- change streams, where the server has them -----------------------------------------------

_change_streams: bool | None = None
_change_streams_lock = threading.Lock()


def change_streams_supported() -> bool:
    """Whether the store serves change streams (a replica set, Atlas, SecantusDB 0.7; a lone mongod does not)."""
    global _change_streams
    with _change_streams_lock:
        if _change_streams is None:
            try:
                with get_repository().collection.watch(max_await_time_ms=1) as probe:
                    probe.try_next()
                _change_streams = True
            except (PyMongoError, StoreUnavailable) as exc:
                logger.info("No change streams on this store (%s); following records by polling", exc)
                _change_streams = False
        return _change_streams


def reset_change_stream_probe() -> None:
    global _change_streams
    with _change_streams_lock:
        _change_streams = None


@contextlib.contextmanager
def _change_waiter(interaction_id: str) -> Iterator[Callable[[], None]]:
    """A wait of at most ``POLL_SECONDS`` that returns early when the record changes (change streams)."""
    if not change_streams_supported():
        yield lambda: time.sleep(POLL_SECONDS)
        return
    match = [{"$match": {"documentKey._id": parse_interaction_id(interaction_id)}}]
    with get_repository().collection.watch(match, max_await_time_ms=int(POLL_SECONDS * 1000)) as changes:

        def wait() -> None:
            try:
                changes.try_next()
            except PyMongoError:
                time.sleep(POLL_SECONDS)

        yield wait


# --- the taps of this process -----------------------------------------------------------------

KEEP_ENDED_SECONDS = 60.0
_taps: dict[str, Tap] = {}
_taps_lock = threading.Lock()


def tap_for(key: str, start: Callable[[Tap], None]) -> Tap:
    """The tap for ``key``, with one more follower (``detach`` it); a new one is filled by ``start(tap)``."""
    now = time.monotonic()
    with _taps_lock:
        for old_key in [
            k for k, t in _taps.items() if t.ended_at is not None and now - t.ended_at > KEEP_ENDED_SECONDS
        ]:
            del _taps[old_key]
        tap = _taps.get(key)
        if tap is not None:
            tap.attach()
            return tap
        tap = _taps[key] = Tap(key)
        tap.attach()
    threading.Thread(target=start, args=(tap,), name=f"feed-{key[:12]}", daemon=True).start()
    return tap


def _release_if_idle(tap: Tap) -> bool:
    """Drop a store follower's tap nobody follows any more; False when a feed has just attached."""
    with _taps_lock:
        if tap.followers > 0:
            return False
        if _taps.get(tap.key) is tap:
            del _taps[tap.key]
        return True


def reset_taps() -> None:
    """Forget every tap (tests)."""
    with _taps_lock:
        _taps.clear()


def peek(key: str) -> Tap | None:
    """The tap for ``key`` if a feed of this process follows it already."""
    with _taps_lock:
        return _taps.get(key)
