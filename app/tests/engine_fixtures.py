"""Session fixtures for the engine tests: the real llama-server on the bundled GGUF file.

The binary is found (LLAMA_SERVER_BIN, PATH, DATA_DIR/llama.cpp or the checkout's var/llama.cpp) or built once
(about 4 minutes; ``dev.py test`` has normally built it already). The tests are skipped, with the reason, only
when it cannot be had at all (no binary, and no cmake/make/g++ to build one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from app.errors import ModelUnavailable
from app.services.bundled_model import locate_bundled_gguf
from app.services.engines.llama_build import LlamaBinary, LlamaBuildError, ensure_llama_server, find_llama_server
from app.services.engines.llamacpp import LlamaCppService
from django_hf_ml.choices import BUNDLED_MODEL_ID

ROOT = Path(__file__).resolve().parents[2]
TEST_THREADS = 2
TEST_SLOTS = 8
TEST_CTX = 8192


def locate_test_binary() -> LlamaBinary:
    configured = os.environ.get("LLAMA_SERVER_BIN", "").strip()
    for data_dir in (Path(settings.DATA_DIR), ROOT / "var"):
        found = find_llama_server(configured=configured, data_dir=data_dir)
        if found is not None:
            return found
    return ensure_llama_server(configured=configured, data_dir=ROOT / "var", progress=print)


@pytest.fixture(scope="session")
def llama_binary() -> LlamaBinary:
    try:
        return locate_test_binary()
    except LlamaBuildError as exc:
        pytest.skip(f"llama-server cannot be had on this machine: {exc}")


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    try:
        return locate_bundled_gguf()
    except ModelUnavailable as exc:
        pytest.skip(f"the bundled GGUF file is not installed: {exc.message}")


def make_llama_service(binary: LlamaBinary, gguf: Path, log_dir: Path, *, slots: int = TEST_SLOTS) -> LlamaCppService:
    return LlamaCppService(
        model=BUNDLED_MODEL_ID,
        gguf_path=gguf,
        binary=binary,
        threads=TEST_THREADS,
        slots=slots,
        ctx=TEST_CTX,
        log_file=log_dir / "llama-server.log",
        timeout=60.0,
    )


@pytest.fixture(scope="session")
def llama_service(
    llama_binary: LlamaBinary, bundled_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaCppService]:
    """The llamacpp engine on the bundled GGUF, its real llama-server started once for the session."""
    service = make_llama_service(llama_binary, bundled_gguf, tmp_path_factory.mktemp("llama"))
    service.warm_up()
    yield service
    service.close()


@pytest.fixture
def llama_url(llama_service: LlamaCppService) -> str:
    """The base URL of the session's real llama-server (an OpenAI-compatible server)."""
    return llama_service.sidecar.ensure_started()
