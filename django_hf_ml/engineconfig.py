"""Parsing and validation of the engine variables; imports nothing of ``app``.

- ``HF_ENGINE``: ``auto`` (default), ``transformers``, ``llamacpp`` or ``openai``.
- ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_API``: the OpenAI-compatible server of the ``openai``
  engine (the same names the official SDK reads, so an existing setup carries over).
- ``LLAMA_SERVER_BIN``, ``LLAMA_SLOTS``, ``LLAMA_CTX``: the ``llama-server`` sidecar of the ``llamacpp`` engine.
- ``HF_BATCHING``: ``continuous`` (rows join and leave between decode steps; settings.py's default outside
  pytest) or ``static`` (whole batches) for causal models on the ``transformers`` engine.

Each bad value raises ``ImproperlyConfigured`` naming the variable and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from django_hf_ml.envconfig import parse_choice, parse_int

ENGINES: tuple[str, ...] = ("auto", "transformers", "llamacpp", "openai")
OPENAI_APIS: tuple[str, ...] = ("chat", "completions")
BATCHING: tuple[str, ...] = ("static", "continuous")
MIN_CTX_PER_SLOT = 256
# The default context of each llama-server slot (LLAMA_CTX defaults to LLAMA_SLOTS x this): an answer may be
# up to 1024 new tokens, so 2048 leaves about 1000 tokens for the prompt or the conversation so far.
DEFAULT_CTX_PER_SLOT = 2048


@dataclass(frozen=True)
class EngineSettings:
    engine: str
    openai_base_url: str
    openai_api_key: str
    openai_api: str
    llama_server_bin: str
    llama_slots: int
    llama_ctx: int
    batching: str = "static"


def parse_engine(value: str) -> str:
    return parse_choice("HF_ENGINE", value or "auto", ENGINES)


def parse_base_url(name: str, value: str) -> str:
    url = value.strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"{name}={value!r} must start with http:// or https://, e.g. {name}=http://127.0.0.1:8080/v1."
        )
    return url


def engine_settings(
    *,
    engine: str,
    model: str,
    openai_base_url: str,
    openai_api_key: str,
    openai_api: str,
    llama_server_bin: str,
    llama_slots: str,
    llama_ctx: str,
    batching: str = "static",
) -> EngineSettings:
    """All engine variables, checked together (``model`` is HF_MODEL, for the engine/model pairings)."""
    chosen = parse_engine(engine)
    base_url = parse_base_url("OPENAI_BASE_URL", openai_base_url)
    if chosen == "openai" and not base_url:
        raise ImproperlyConfigured(
            "HF_ENGINE=openai needs OPENAI_BASE_URL, the server's OpenAI API root, e.g. http://127.0.0.1:8080/v1."
        )
    if chosen == "llamacpp" and model and not model.lower().endswith(".gguf"):
        raise ImproperlyConfigured(
            f"HF_ENGINE=llamacpp runs GGUF files, but HF_MODEL={model!r} is not a .gguf file: "
            "set HF_MODEL to a .gguf path (or leave it empty for the bundled model), or use HF_ENGINE=auto."
        )
    slots = parse_int("LLAMA_SLOTS", llama_slots, default=8, minimum=1, maximum=256)
    ctx = parse_int(
        "LLAMA_CTX", llama_ctx, default=slots * DEFAULT_CTX_PER_SLOT, minimum=MIN_CTX_PER_SLOT, maximum=1_048_576
    )
    if ctx < slots * MIN_CTX_PER_SLOT:
        raise ImproperlyConfigured(
            f"LLAMA_CTX={ctx} is too small for LLAMA_SLOTS={slots}: llama-server splits the context between the "
            f"slots, so allow at least {MIN_CTX_PER_SLOT} tokens per slot (LLAMA_CTX >= {slots * MIN_CTX_PER_SLOT})."
        )
    return EngineSettings(
        engine=chosen,
        openai_base_url=base_url,
        openai_api_key=openai_api_key.strip(),
        openai_api=parse_choice("OPENAI_API", openai_api or "chat", OPENAI_APIS),
        llama_server_bin=llama_server_bin.strip(),
        llama_slots=slots,
        llama_ctx=ctx,
        batching=parse_choice("HF_BATCHING", batching or "static", BATCHING),
    )
