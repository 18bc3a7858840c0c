"""Session-scoped tiny models, built locally once per test run (registered by ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.tests.tiny_models import build_tiny_llama, build_tiny_t5


@pytest.fixture(scope="session")
def tiny_t5_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a 2+2-layer T5 with a Unigram tokenizer (``text2text-generation``)."""
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_causal_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a 2-layer Llama-style model with a chat template (``text-generation``)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
