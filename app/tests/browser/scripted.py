"""A stand-in model for browser tests that need an answer with exact text (markdown, hostile HTML).

``install_script`` replaces the local backend's batch runner: a prompt found in ``answers`` is
answered with that text, streamed in a few chunks; one not found is echoed. With ``hold`` set, the
answer stops after its first chunk until the test sets ``release`` (to look at it mid-stream).
Everything else (the record written first, the feed, the done swap, the store) is the real path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from app.domain.generation import GenerationResult
from app.domain.streams import StreamEvent
from app.services import generation
from app.services.engines.transformers_batch import LocalBackend
from app.services.engines.worker import InferenceRequest

CHUNKS = 6
SAMPLE_IMAGE_HOST = "images.evil.invalid"
SAMPLE_CODE = 'def greet(name):\n    return f"<b>{name}</b>"  # hi\n'
SAMPLE_MARKDOWN = (
    "# Capitals\n\nSome **bold**, some *emphasis* and ~~strike~~.\n\n"
    "| Country | Capital |\n|:--|--:|\n| France | Paris |\n| Spain | Madrid |\n\n"
    f"```python\n{SAMPLE_CODE}```\n\n"
    "```\nplain block\n```\n\n"
    "> A quote with `inline code`.\n\n"
    "- one\n- two\n\n[Docs](https://docs.example.org/page) and <mailto:me@example.org>\n\n"
    f"![A cat](http://{SAMPLE_IMAGE_HOST}/cat.png)\n"
)


@dataclass
class Script:
    answers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    first_chunk_sent: threading.Event = field(default_factory=threading.Event)

    def run(self, requests: Sequence[InferenceRequest]) -> None:
        for request in requests:
            text = self.answers.get(request.prompt, f"Echo: {request.prompt}")
            size = max(1, len(text) // CHUNKS + 1)
            chunks = [text[i : i + size] for i in range(0, len(text), size)]
            for number, chunk in enumerate(chunks):
                if request.cancelled:
                    break
                request._emit(StreamEvent("token", text=chunk))
                if number == 0:
                    self.first_chunk_sent.set()
                    if self.hold:
                        self.release.wait(30)
                time.sleep(0.02)
            sent = request.partial_text()
            request._finish(
                result=GenerationResult(
                    text=sent,
                    model="scripted",
                    task="text-generation",
                    prompt_tokens=len(request.prompt.split()),
                    output_tokens=len(sent.split()),
                    load_seconds=0.0,
                    generate_seconds=0.01,
                    total_seconds=0.01,
                    finish_reason="cancelled" if request.cancelled else "stop",
                )
            )


def install_script(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    """Use as a fixture body: ``yield from install_script(monkeypatch)``."""
    script = Script()

    def run_batch(self: LocalBackend, requests: Sequence[InferenceRequest], *, load_seconds: float) -> None:
        script.run(requests)

    monkeypatch.setattr(LocalBackend, "run_batch", run_batch)
    yield script
    script.release.set()
    generation.reset_streams()
