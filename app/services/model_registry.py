"""The service of each offered model (``model_specs``), on its engine, and which of them stay loaded.

Each model loads lazily on its first request and stays loaded. When the loaded models together
exceed ``HF_MEMORY_BUDGET_MB``, the least recently used idle ones are unloaded (a model with
queued or running requests is never unloaded; the one just loaded is never unloaded).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.conf import settings

from app.services.engines.choice import engine_service
from app.services.engines.tgi import remote_service
from app.services.model_specs import GenerationService, ModelSpec, resolve_spec
from app.services.nlp_service import default_service, get_service
from app.services.per_process import PerProcess

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def service_for(model_id: str | None) -> GenerationService:
    """The process-wide service of an offered model, marked as most recently used."""
    spec = resolve_spec(model_id)
    service = _build_service(spec)
    get_tracker().used(service)
    return service


def _build_service(spec: ModelSpec) -> GenerationService:
    if spec.kind == "remote":
        return remote_service(url=spec.id, token=settings.HF_API_TOKEN)
    on_engine = engine_service(spec)  # llamacpp / openai; None: the transformers engine, below
    if on_engine is not None:
        return on_engine
    if spec.kind == "bundled" or spec.id == (settings.HF_MODEL or "").strip():
        return default_service()
    return get_service(model=spec.id, task=spec.task, token=settings.HF_API_TOKEN)


# --- Least-recently-used unloading -------------------------------------------------------------


class LoadedModels:
    """Tracks use order and unloads idle models beyond ``budget_bytes`` (0 = no limit)."""

    def __init__(self, *, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._order: OrderedDict[int, GenerationService] = OrderedDict()
        self._lock = threading.Lock()

    def used(self, service: GenerationService) -> None:
        """Mark ``service`` most recently used; enforce the budget once it has loaded."""
        with self._lock:
            self._order[id(service)] = service
            self._order.move_to_end(id(service))
        if hasattr(service, "on_loaded") and service.on_loaded is None:  # local models report their load
            service.on_loaded = self.enforce
        if service.is_loaded:
            self.enforce(service)

    def loaded_bytes(self) -> int:
        with self._lock:
            services = list(self._order.values())
        return sum(service.memory_bytes() for service in services)

    def enforce(self, keep: GenerationService) -> list[str]:
        """Unload least recently used idle models until the loaded ones fit; return what was unloaded."""
        if self.budget_bytes <= 0:
            return []
        unloaded: list[str] = []
        with self._lock:
            candidates = [service for service in self._order.values() if service is not keep]
            total = sum(service.memory_bytes() for service in self._order.values())
            for service in candidates:  # oldest first
                if total <= self.budget_bytes:
                    break
                size = service.memory_bytes()
                if size == 0 or service.worker().busy:
                    continue
                service.unload()
                total -= size
                unloaded.append(service.model)
                logger.info("Unloaded %s (%d MB) to stay within HF_MEMORY_BUDGET_MB", service.model, size >> 20)
            if total > self.budget_bytes:
                logger.warning(
                    "Loaded models use %d MB, over HF_MEMORY_BUDGET_MB=%d (the others are busy or in use)",
                    total >> 20,
                    self.budget_bytes >> 20,
                )
        return unloaded

    def forget(self) -> None:
        with self._lock:
            self._order.clear()


_tracker = PerProcess(lambda: LoadedModels(budget_bytes=int(getattr(settings, "HF_MEMORY_BUDGET_MB", 0)) << 20))
get_tracker = _tracker.get
reset_tracker = _tracker.reset  # forget use order and the budget (tests, settings changes)
