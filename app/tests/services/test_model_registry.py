"""Model allowlist from HF_MODELS, lazy per-model services, and LRU unloading under a memory budget."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import GenerationParams
from app.errors import ModelNotOffered
from app.services import model_registry, nlp_service
from app.services.engines.transformers_service import NLPService
from app.services.model_registry import LoadedModels, service_for
from app.services.model_specs import ModelSpec, offered_models, resolve_spec
from django_hf_ml.choices import BUNDLED_MODEL_ID
from django_hf_ml.envconfig import parse_models


@pytest.fixture(autouse=True)
def _fresh_registry(settings: SettingsWrapper) -> Iterator[None]:
    settings.HF_MODEL = ""
    settings.HF_MODELS = ()
    settings.HF_ENDPOINT_URL = ""
    model_registry.reset_tracker()
    nlp_service.reset_services()
    yield
    model_registry.reset_tracker()
    nlp_service.reset_services()


# --- HF_MODELS ---------------------------------------------------------------------------------


def test_models_are_id_task_pairs() -> None:
    assert parse_models("HF_MODELS", " a/b=text-generation , ./local=dir=summarization,") == (
        ("a/b", "text-generation"),
        ("./local=dir", "summarization"),
    )


def test_empty_models_setting_offers_nothing_extra() -> None:
    assert parse_models("HF_MODELS", "  ") == ()


def test_entry_without_task_names_the_variable_and_the_format() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"HF_MODELS entry 'google/flan-t5-small' must be id=task\."):
        parse_models("HF_MODELS", "google/flan-t5-small")


def test_unknown_task_names_the_entry() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"not a supported task.*in the HF_MODELS entry 'x=fill-mask'"):
        parse_models("HF_MODELS", "x=fill-mask")


# --- Allowlist ---------------------------------------------------------------------------------


def test_bundled_model_is_the_default_when_hf_model_is_unset() -> None:
    assert offered_models() == [ModelSpec(id=BUNDLED_MODEL_ID, task="text-generation", kind="bundled")]


def test_configured_model_comes_first_then_the_extra_ones_without_duplicates(settings: SettingsWrapper) -> None:
    settings.HF_MODEL, settings.HF_TASK = "org/main", "text2text-generation"
    settings.HF_MODELS = (("org/extra", "text-generation"), ("org/main", "text-generation"))
    assert [(spec.id, spec.task) for spec in offered_models()] == [
        ("org/main", "text2text-generation"),
        ("org/extra", "text-generation"),
    ]


def test_remote_endpoint_is_offered_first(settings: SettingsWrapper) -> None:
    settings.HF_ENDPOINT_URL = "http://tgi.local:8080"
    assert offered_models()[0] == ModelSpec(id="http://tgi.local:8080", task="text-generation", kind="remote")


def test_empty_choice_is_the_default_and_unknown_ids_are_refused() -> None:
    assert resolve_spec("").id == BUNDLED_MODEL_ID
    with pytest.raises(ModelNotOffered):
        resolve_spec("/etc/passwd")


def test_each_offered_model_gets_one_lazy_service(settings: SettingsWrapper, tiny_t5_model: Path) -> None:
    settings.HF_MODELS = ((str(tiny_t5_model), "text2text-generation"),)
    service = service_for(str(tiny_t5_model))
    assert service is service_for(str(tiny_t5_model))
    assert service.task == "text2text-generation"
    assert not service.is_loaded


def test_labels_show_the_short_name_and_task() -> None:
    assert ModelSpec("HuggingFaceTB/SmolLM2-135M-Instruct", "text-generation").label == (
        "SmolLM2-135M-Instruct (text-generation)"
    )


# --- LRU under a memory budget -----------------------------------------------------------------


@dataclass
class FakeWorker:
    busy: bool = False


@dataclass(eq=False)
class FakeService:
    model: str
    size: int
    loaded: bool = True
    worker_state: FakeWorker = field(default_factory=FakeWorker)

    @property
    def is_loaded(self) -> bool:
        return self.loaded

    def memory_bytes(self) -> int:
        return self.size if self.loaded else 0

    def worker(self) -> FakeWorker:
        return self.worker_state

    def unload(self) -> None:
        self.loaded = False


def test_least_recently_used_idle_model_is_unloaded_first() -> None:
    tracker = LoadedModels(budget_bytes=250)
    a, b, c = FakeService("a", 100), FakeService("b", 100), FakeService("c", 100)
    tracker.used(a)  # type: ignore[arg-type]
    tracker.used(b)  # type: ignore[arg-type]
    tracker.used(a)  # type: ignore[arg-type]  (a is now the most recent)
    tracker.used(c)  # type: ignore[arg-type]
    assert (a.loaded, b.loaded, c.loaded) == (True, False, True)
    assert tracker.loaded_bytes() == 200


def test_busy_models_are_not_unloaded() -> None:
    tracker = LoadedModels(budget_bytes=150)
    a, b = FakeService("a", 100, worker_state=FakeWorker(busy=True)), FakeService("b", 100)
    tracker.used(a)  # type: ignore[arg-type]
    tracker.used(b)  # type: ignore[arg-type]
    assert (a.loaded, b.loaded) == (True, True)


def test_the_model_just_used_stays_even_when_alone_over_budget() -> None:
    tracker = LoadedModels(budget_bytes=50)
    big = FakeService("big", 100)
    tracker.used(big)  # type: ignore[arg-type]
    assert big.loaded


def test_zero_budget_never_unloads() -> None:
    tracker = LoadedModels(budget_bytes=0)
    services = [FakeService(name, 10**9) for name in "abc"]
    for service in services:
        tracker.used(service)  # type: ignore[arg-type]
    assert all(service.loaded for service in services)


def test_loading_real_models_keeps_within_the_budget(tiny_causal_model: Path, tiny_t5_model: Path) -> None:
    first = NLPService(model=str(tiny_causal_model), task="text-generation")
    second = NLPService(model=str(tiny_t5_model), task="text2text-generation")
    third = NLPService(model=str(tiny_causal_model), task="text-generation")
    first.warm_up(), second.warm_up()
    causal_size, t5_size = first.memory_bytes(), second.memory_bytes()
    first.unload(), second.unload()
    tracker = LoadedModels(budget_bytes=max(2 * causal_size, causal_size + t5_size))

    for service in (first, second):
        tracker.used(service)
        service.warm_up()  # the load reports back to the tracker (on_loaded)
    tracker.used(first)
    tracker.used(third)
    third.warm_up()

    assert (first.is_loaded, second.is_loaded, third.is_loaded) == (True, False, True)
    assert tracker.loaded_bytes() <= tracker.budget_bytes
    assert second.generate("Hello", GenerationParams(max_new_tokens=2)).output_tokens >= 1  # reloads
