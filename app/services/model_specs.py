"""Which models a visitor may pick: the allowlist, and what every model's service offers.

The allowlist is the default model (``HF_MODEL``, or the bundled SmolLM2 when it is unset), the
remote endpoint when ``HF_ENDPOINT_URL`` is set, and every entry of ``HF_MODELS`` (``id=task`` pairs
separated by commas; ``id`` is a hub id or a local folder). Nothing else can be requested: a model id
from a form or the API is looked up here, never passed to ``from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from app.errors import ModelNotOffered
from django_hf_ml.choices import BUNDLED_MODEL_ID, CAUSAL_TASK
from django_hf_ml.envconfig import validate_task_name

if TYPE_CHECKING:
    from app.domain.generation import GenerationParams, GenerationResult, Turns
    from app.services.engines.worker import InferenceRequest, ModelWorker, OnFinish


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
