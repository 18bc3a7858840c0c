"""The NLP service: which engine answers for a model, created once per process and loaded lazily.

``default_service()`` is the model the settings configure (``HF_MODEL``/``HF_TASK``, or the bundled
SmolLM2 when ``HF_MODEL`` is empty); ``get_service()`` any offered hub model or folder. Each one is
an engine service (``engines.transformers_service.NLPService`` today) with a ``ModelWorker`` queue;
``app.services.model_registry`` decides which models a visitor may pick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from app.domain.generation import validate_task
from app.services.bundled_model import ensure_bundled_model
from app.services.engines.transformers_service import NLPService
from django_hf_ml.choices import BUNDLED_MODEL_ID, CAUSAL_TASK

logger = logging.getLogger(__name__)

# --- Process-wide registry ---------------------------------------------------------------------

_services: dict[tuple[str, str, bool], NLPService] = {}
_services_lock = threading.Lock()


def get_service(*, model: str, task: str, token: str | None = None) -> NLPService:
    """The process-wide service for (task, model), created on first request (not loaded)."""
    normalized_task = validate_task(task)
    return _registered(
        (normalized_task, model, False), lambda: NLPService(model=model, task=normalized_task, token=token)
    )


def default_service() -> NLPService:
    """The service configured by settings: HF_MODEL/HF_TASK, or the bundled SmolLM2 when HF_MODEL is empty."""
    configured_model = (settings.HF_MODEL or "").strip()
    token = settings.HF_API_TOKEN or None
    if configured_model:
        return get_service(model=configured_model, task=settings.HF_TASK, token=token)
    return _registered((CAUSAL_TASK, BUNDLED_MODEL_ID, True), _bundled_service)


def bundled_models_dir() -> Path:
    """Where converted models are kept: ``settings.DATA_DIR / "models"``."""
    return Path(settings.DATA_DIR) / "models"


def queue_depths() -> dict[str, int]:
    """Requests waiting per registered model (for metrics)."""
    with _services_lock:
        services = list(_services.values())
    return {service.model: service.queue_length for service in services}


def reset_services() -> None:
    """Forget every service and stop its worker (tests only)."""
    with _services_lock:
        services = list(_services.values())
        _services.clear()
    for service in services:
        service.unload()


def _bundled_service() -> NLPService:
    if validate_task(settings.HF_TASK or CAUSAL_TASK) != CAUSAL_TASK:
        logger.warning(
            "HF_TASK=%s is ignored: HF_MODEL is unset and the bundled model is text-generation", settings.HF_TASK
        )
    models_dir = bundled_models_dir()
    return NLPService(model=BUNDLED_MODEL_ID, task=CAUSAL_TASK, resolve_source=lambda: ensure_bundled_model(models_dir))


def _registered(key: tuple[str, str, bool], create: Callable[[], NLPService]) -> NLPService:
    with _services_lock:
        service = _services.get(key)
        if service is None:
            service = _services[key] = create()
        return service
