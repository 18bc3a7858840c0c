"""Which models a visitor may pick, and which of them stay loaded.

The allowlist is the default model (``HF_MODEL``, or the bundled SmolLM2 when it is unset), the
remote endpoint when ``HF_ENDPOINT_URL`` is set, and every entry of ``HF_MODELS``
(``id=task`` pairs separated by commas; ``id`` is a hub id or a local folder). Nothing else can be
requested: a model id from a form or the API is looked up here, never passed to ``from_pretrained``.

Each model loads lazily on its first request and stays loaded. When the loaded models together
exceed ``HF_MEMORY_BUDGET_MB``, the least recently used idle ones are unloaded (a model with
queued or running requests is never unloaded; the one just loaded is never unloaded).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from app.errors import ModelNotOffered
from app.services.engines.tgi import remote_service
from app.services.nlp_service import default_service, get_service
from app.services.per_process import PerProcess
from django_hf_ml.choices import BUNDLED_MODEL_ID, CAUSAL_TASK
from django_hf_ml.envconfig import validate_task_name

if TYPE_CHECKING:
    from app.domain.generation import GenerationParams, GenerationResult, Turns
    from app.services.engines.worker import InferenceRequest, ModelWorker, OnFinish

logger = logging.getLogger(__name__)


class GenerationService(Protocol):
    """What views and the stream layer need from a model, local (``NLPService``) or remote."""

    model: str
    task: str

    @property
    def is_loaded(self) -> bool: ...

    def submit(
        self, prompt: str, params: GenerationParams, *, on_finish: OnFinish = None, messages: Turns = ()
    ) -> InferenceRequest: ...

    def generate(self, prompt: str, params: GenerationParams, *, messages: Turns = ()) -> GenerationResult: ...

    def worker(self) -> ModelWorker: ...

    def memory_bytes(self) -> int: ...

    def unload(self) -> None: ...


@dataclass(frozen=True)
class ModelSpec:
    """One offered model: the id the picker sends and the record keeps, and its task."""

    id: str
    task: str
    kind: str = "local"  # "local", "bundled" or "remote"

    @property
    def label(self) -> str:
        name = self.id.rstrip("/").rsplit("/", 1)[-1] if self.kind != "remote" else f"remote: {self.id}"
        return f"{name} ({self.task})"


def offered_models() -> list[ModelSpec]:
    """The allowlist, default first, from the current settings (cheap; nothing is loaded)."""
    configured = (settings.HF_MODEL or "").strip()
    if configured:
        default = ModelSpec(id=configured, task=validate_task_name("HF_TASK", settings.HF_TASK))
    else:
        default = ModelSpec(id=BUNDLED_MODEL_ID, task=CAUSAL_TASK, kind="bundled")
    specs = [default]
    endpoint = (getattr(settings, "HF_ENDPOINT_URL", "") or "").strip()
    if endpoint:
        specs.insert(0, ModelSpec(id=endpoint, task=CAUSAL_TASK, kind="remote"))
    extra: Sequence[tuple[str, str]] = getattr(settings, "HF_MODELS", ())
    seen = {spec.id for spec in specs}
    for model_id, task in extra:
        if model_id not in seen:
            specs.append(ModelSpec(id=model_id, task=task))
            seen.add(model_id)
    return specs


def resolve_spec(model_id: str | None) -> ModelSpec:
    """The offered model with this id (empty → the default); ``ModelNotOffered`` otherwise."""
    specs = offered_models()
    if not model_id:
        return specs[0]
    for spec in specs:
        if spec.id == model_id:
            return spec
    raise ModelNotOffered()


def service_for(model_id: str | None) -> GenerationService:
    """The process-wide service of an offered model, marked as most recently used."""
    spec = resolve_spec(model_id)
    service = _build_service(spec)
    get_tracker().used(service)
    return service


def _build_service(spec: ModelSpec) -> GenerationService:
    if spec.kind == "remote":
        return remote_service(url=spec.id, token=settings.HF_API_TOKEN)
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
