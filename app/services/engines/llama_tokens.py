"""The size of a conversation in the GGUF model's own tokens, asked of its ``llama-server``.

``/apply-template`` renders the messages through the chat template llama-server itself will apply, and
``/tokenize`` counts that text with the model's tokenizer: the count a follow-up is fitted by is the count
the server will see. Two loopback round trips of a millisecond or so each, a few times per follow-up.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence

from app.domain.generation import ChatTurn

TIMEOUT_SECONDS = 5.0


def _post(url: str, body: dict[str, object], timeout: float) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the loopback sidecar)
        answer = json.loads(response.read())
    if not isinstance(answer, dict):
        raise ValueError(f"unexpected answer from {url}")
    return answer


def chat_token_count(base_url: str, turns: Sequence[ChatTurn], *, timeout: float = TIMEOUT_SECONDS) -> int:
    """Tokens of ``turns`` as the server's chat template renders them, generation prompt included.

    Raises ``OSError``/``ValueError`` when the server cannot say (down, restarting, an old build).
    """
    messages = [turn.to_dict() for turn in turns]
    rendered = _post(f"{base_url}/apply-template", {"messages": messages}, timeout).get("prompt")
    if not isinstance(rendered, str):
        raise ValueError("llama-server /apply-template answered without a prompt")
    tokens = _post(
        f"{base_url}/tokenize", {"content": rendered, "add_special": True, "parse_special": True}, timeout
    ).get("tokens")
    if not isinstance(tokens, list):
        raise ValueError("llama-server /tokenize answered without tokens")
    return len(tokens)
