"""The ``llamacpp`` engine: a GGUF file served by a local ``llama-server`` sidecar, spoken to over the OpenAI API.

The service is the ``openai`` engine (``OpenAIService`` + ``OpenAIBackend``) pointed at the sidecar
(``LlamaSidecar``): one process per GGUF file, ``LLAMA_SLOTS`` parallel slots sharing ``LLAMA_CTX`` tokens
of context, continuous batching inside llama.cpp. The file is read as it is (no de-quantisation).

``warm_up()`` starts the sidecar (about a second); ``is_loaded`` is true while it runs; ``unload()`` stops
it (the next request starts it again); ``close()`` stops it for good. While it is down after a crash,
requests fail with ``SIDECAR_RESTARTING`` (HTTP 503) and the watchdog restarts it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from app.errors import DomainError, ModelUnavailable
from app.services.engines.llama_build import LlamaBinary
from app.services.engines.openai_compat import DEFAULT_TIMEOUT_SECONDS, OpenAIBackend, OpenAIService
from app.services.engines.sidecar import SIDECAR_RESTARTING, LlamaSidecar, SidecarConfig

logger = logging.getLogger(__name__)

DYING_GRACE_SECONDS = 0.5
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class LlamaCppService(OpenAIService):
    """The ``GenerationService`` of a GGUF model on a ``llama-server`` sidecar."""

    engine = "llamacpp"

    def __init__(
        self,
        *,
        model: str,
        gguf_path: Path,
        binary: LlamaBinary,
        threads: int,
        slots: int,
        ctx: int,
        log_file: Path,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Store settings only: nothing starts until ``warm_up()`` or the first request."""
        self.gguf_path = gguf_path
        self.binary = binary
        self.sidecar = LlamaSidecar(
            SidecarConfig(
                binary=binary.path,
                model_path=gguf_path,
                threads=threads,
                slots=slots,
                ctx=ctx,
                log_file=log_file,
                model_name=model,
            )
        )
        backend = OpenAIBackend(
            name=f"llama-server:{gguf_path.name}",
            model=model,
            base_url=self.sidecar.base_url_or_raise,
            api="chat",
            timeout=timeout,
            max_concurrent=slots,  # more would only queue inside llama-server, out of sight of our 429s
            extended_sampling=True,
        )
        backend.load_hook = self.warm_up
        backend.explain_failure = self._explain
        super().__init__(model=model, backend=backend)

    @property
    def is_loaded(self) -> bool:
        return self.sidecar.running

    def warm_up(self) -> float:
        """Start the sidecar unless it runs; return the seconds spent (0.0 when it was running)."""
        if self.sidecar.running:
            return 0.0
        started = time.perf_counter()
        self.sidecar.ensure_started()
        return time.perf_counter() - started

    def describe(self) -> str:
        config = self.sidecar.config
        return (
            f"llamacpp engine: {self.gguf_path.name} on {self.binary.describe()}, "
            f"{config.threads} thread(s), {config.slots} slot(s), context {config.ctx}"
        )

    def memory_bytes(self) -> int:
        """Resident memory of the sidecar process (0 when it is not running)."""
        pid = self.sidecar.pid if self.sidecar.running else None
        return 0 if pid is None else process_rss_bytes(pid)

    def unload(self) -> None:
        """Stop the sidecar (memory budget, tests); kept running while answers are being streamed."""
        if self.backend.in_flight:
            logger.info("Not stopping llama-server for %s: %d answer(s) in flight", self.model, self.backend.in_flight)
            return
        super().unload()
        self.sidecar.stop()

    def close(self) -> None:
        super().unload()
        self.sidecar.close()

    def _explain(self, error: DomainError) -> DomainError:
        """A request that failed because the sidecar died says so (503) instead of "cannot connect"."""
        if isinstance(error, ModelUnavailable) and self.sidecar.exited_within(DYING_GRACE_SECONDS):
            return ModelUnavailable(SIDECAR_RESTARTING.format(model=self.model))
        return error


def process_rss_bytes(pid: int) -> int:
    """Resident set size of a process from ``/proc`` (0 where that is not available)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE if len(fields) > 1 else 0
