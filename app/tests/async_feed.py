"""Read an async streaming response (the SSE feed) from a synchronous test, chunk by chunk.

Django's test ``Client`` returns the async view's ``StreamingHttpResponse`` as it is: its content is
an async iterator. One event loop in a helper thread steps through it, so the test sees each chunk
as the server yields it (and can act mid-stream, e.g. press Stop), as a browser would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def feed_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="test-feed-loop", daemon=True).start()
        return _loop


class FeedChunks:
    """The chunks of one streaming response; ``close()`` is what the server does when the tab goes away."""

    def __init__(self, response: Any) -> None:
        self._response = response
        content = response.streaming_content
        self._async: AsyncIterator[bytes] | None = content if hasattr(content, "__anext__") else None
        self._sync: Iterator[bytes] | None = None if self._async is not None else iter(content)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            if self._sync is not None:
                try:
                    yield next(self._sync)
                except StopIteration:
                    return
                continue
            assert self._async is not None
            future = asyncio.run_coroutine_threadsafe(_next(self._async), feed_loop())
            chunk = future.result(timeout=60)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        if self._async is not None and hasattr(self._async, "aclose"):
            asyncio.run_coroutine_threadsafe(self._async.aclose(), feed_loop()).result(timeout=30)
        self._response.close()


async def _next(iterator: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None
