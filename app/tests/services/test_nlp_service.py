"""The NLP service: parameter validation, tasks, loading once, and generation with tiny local models."""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.domain.generation import (
    BEAMS_FOR_CAUSAL_ERROR,
    BEAMS_WITH_SAMPLING_ERROR,
    DO_SAMPLE_ERROR,
    PARAM_BOUNDS,
    SEED_ERROR,
    UNKNOWN_PARAM_ERROR,
    GenerationParams,
    GenerationResult,
    model_kind,
    validate_task,
)
from app.errors import PARAMS_INVALID, PROMPT_EMPTY, InvalidParams, InvalidPrompt, ModelUnavailable, UnsupportedTask
from app.services import nlp_service
from app.services.engines.transformers_service import NLPService
from app.services.nlp_service import default_service, get_service
from django_hf_ml.choices import BUNDLED_MODEL_ID, SUPPORTED_TASKS

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings

GREEDY_8 = GenerationParams(max_new_tokens=8)


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    nlp_service.reset_services()
    yield
    nlp_service.reset_services()


def seq2seq_service(folder: Path, task: str = "text2text-generation", **kwargs: Any) -> NLPService:
    return NLPService(model=str(folder), task=task, **kwargs)


def causal_service(folder: Path, **kwargs: Any) -> NLPService:
    return NLPService(model=str(folder), task="text-generation", **kwargs)


def param_errors(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidParams) as caught:
        GenerationParams.from_mapping(data)
    assert caught.value.message == PARAMS_INVALID
    return caught.value.errors


def count_loads(monkeypatch: pytest.MonkeyPatch, service: NLPService, *, delay: float = 0.0) -> list[int]:
    """Wrap the service's loader; the returned list grows by one per load attempt."""
    calls: list[int] = []
    original_load = service._load

    def counting_load() -> Any:
        calls.append(1)
        time.sleep(delay)
        return original_load()

    monkeypatch.setattr(service, "_load", counting_load)
    return calls


# --- GenerationParams -------------------------------------------------------------------------


def test_empty_mapping_gives_defaults() -> None:
    assert GenerationParams.from_mapping({}) == GenerationParams()
    assert GenerationParams() == GenerationParams(
        max_new_tokens=64, temperature=0.7, top_p=1.0, top_k=50, repetition_penalty=1.0, num_beams=1, do_sample=False
    )


def test_form_strings_are_parsed_to_numbers() -> None:
    data = {"max_new_tokens": "128", "temperature": "0.5", "top_p": "0.9", "top_k": "40", "seed": "7"}
    params = GenerationParams.from_mapping(data)
    assert params == GenerationParams(max_new_tokens=128, temperature=0.5, top_p=0.9, top_k=40, seed=7)
    assert isinstance(params.max_new_tokens, int) and isinstance(params.temperature, float)


def test_empty_strings_and_none_take_defaults() -> None:
    params = GenerationParams.from_mapping({"max_new_tokens": "", "temperature": None, "seed": "  "})
    assert params == GenerationParams()


def test_whole_float_is_accepted_for_integer_fields() -> None:
    assert GenerationParams.from_mapping({"max_new_tokens": 32.0, "num_beams": "2.0"}).max_new_tokens == 32


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_new_tokens", 0, "max_new_tokens must be a whole number between 1 and 1024."),
        ("max_new_tokens", 1025, "max_new_tokens must be a whole number between 1 and 1024."),
        ("temperature", 0, "temperature must be a number greater than 0 and at most 2."),
        ("temperature", 2.01, "temperature must be a number greater than 0 and at most 2."),
        ("top_p", 0.0, "top_p must be a number greater than 0 and at most 1."),
        ("top_p", 1.5, "top_p must be a number greater than 0 and at most 1."),
        ("top_k", -1, "top_k must be a whole number between 0 and 1000."),
        ("top_k", 1001, "top_k must be a whole number between 0 and 1000."),
        ("repetition_penalty", 0.99, "repetition_penalty must be a number between 1 and 2."),
        ("repetition_penalty", 2.5, "repetition_penalty must be a number between 1 and 2."),
        ("num_beams", 0, "num_beams must be a whole number between 1 and 8."),
        ("num_beams", 9, "num_beams must be a whole number between 1 and 8."),
        ("seed", -1, SEED_ERROR),
        ("seed", 2**31, SEED_ERROR),
    ],
)
def test_out_of_bounds_value_names_the_allowed_range(field: str, value: object, message: str) -> None:
    assert param_errors({field: value}) == {field: message}


@pytest.mark.parametrize("value", [1, 1024])
def test_bounds_are_inclusive(value: int) -> None:
    assert GenerationParams.from_mapping({"max_new_tokens": value}).max_new_tokens == value


@pytest.mark.parametrize("value", [True, False, "abc", "1e", [3], {"n": 3}, 2.5, "nan", math.nan, "inf", -math.inf])
def test_non_numbers_bools_fractions_and_non_finite_are_rejected(value: object) -> None:
    assert param_errors({"max_new_tokens": value}) == {
        "max_new_tokens": "max_new_tokens must be a whole number between 1 and 1024."
    }


@pytest.mark.parametrize("value", ["nan", math.inf, True])
def test_float_fields_reject_non_finite_and_bool(value: object) -> None:
    assert set(param_errors({"temperature": value})) == {"temperature"}


def test_unknown_keys_are_each_reported() -> None:
    errors = param_errors({"max_tokens": 5, "beam": 2})
    assert errors == {"max_tokens": UNKNOWN_PARAM_ERROR, "beam": UNKNOWN_PARAM_ERROR}


def test_unknown_keys_can_be_ignored_for_whole_forms() -> None:
    params = GenerationParams.from_mapping({"prompt": "hi", "max_new_tokens": "5"}, ignore_unknown=True)
    assert params.max_new_tokens == 5


def test_every_bad_field_is_reported_at_once() -> None:
    assert set(param_errors({"max_new_tokens": 0, "top_p": 2, "do_sample": "maybe"})) == {
        "max_new_tokens",
        "top_p",
        "do_sample",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("on", True), ("true", True), ("TRUE", True), ("1", True), (True, True), (1, True)]
    + [("off", False), ("false", False), ("0", False), (False, False), (0, False), ("", False)],
)
def test_do_sample_accepts_checkbox_and_json_values(raw: object, expected: bool) -> None:
    assert GenerationParams.from_mapping({"do_sample": raw}).do_sample is expected


@pytest.mark.parametrize("raw", ["maybe", 2, 0.5, [True]])
def test_do_sample_rejects_other_values(raw: object) -> None:
    assert param_errors({"do_sample": raw}) == {"do_sample": DO_SAMPLE_ERROR}


def test_beam_search_cannot_be_combined_with_sampling() -> None:
    assert param_errors({"do_sample": "on", "num_beams": 2}) == {"num_beams": BEAMS_WITH_SAMPLING_ERROR}


def test_to_dict_round_trips() -> None:
    params = GenerationParams(max_new_tokens=10, temperature=1.2, do_sample=True, seed=3)
    assert params.to_dict()["seed"] == 3
    assert GenerationParams(**params.to_dict()) == params  # type: ignore[arg-type]


def test_greedy_generate_kwargs_leave_out_sampling_knobs() -> None:
    assert "temperature" not in GenerationParams().generate_kwargs()
    sampling = GenerationParams(do_sample=True, temperature=0.3).generate_kwargs()
    assert sampling["temperature"] == 0.3 and sampling["do_sample"] is True


@pytest.mark.parametrize("name", list(PARAM_BOUNDS))
def test_bound_defaults_match_the_dataclass_defaults(name: str) -> None:
    assert PARAM_BOUNDS[name].default == getattr(GenerationParams(), name)


def test_bounds_are_exposed_for_forms() -> None:
    assert PARAM_BOUNDS["max_new_tokens"].minimum == 1 and PARAM_BOUNDS["max_new_tokens"].maximum == 1024
    assert PARAM_BOUNDS["temperature"].exclusive_minimum is True


# --- Tasks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task", ["text2text-generation", "text-generation", "summarization", "translation", "translation_en_to_de"]
)
def test_supported_tasks_and_aliases_validate(task: str) -> None:
    assert validate_task(task) == task


def test_task_names_are_normalized() -> None:
    assert validate_task("  Text-Generation ") == "text-generation"


def test_aliases_are_seq2seq_tasks() -> None:
    assert model_kind("summarization") == model_kind("translation_en_to_fr") == "seq2seq"
    assert model_kind("text-generation") == "causal"


@pytest.mark.parametrize("task", ["fill-mask", "translation_english", "", "text-classification"])
def test_unknown_task_error_lists_supported_tasks(task: str) -> None:
    with pytest.raises(UnsupportedTask) as caught:
        validate_task(task)
    assert all(name in caught.value.message for name in (*SUPPORTED_TASKS, "summarization", "translation"))


# --- Generation --------------------------------------------------------------------------------


def test_constructor_loads_nothing() -> None:
    service = NLPService(model="/no/such/folder", task="text-generation")
    assert not service.is_loaded


def test_seq2seq_generate_returns_typed_result(tiny_t5_model: Path) -> None:
    service = seq2seq_service(tiny_t5_model)
    result = service.generate("Translate the house is wonderful", GREEDY_8)
    assert isinstance(result, GenerationResult)
    assert (result.model, result.task) == (str(tiny_t5_model), "text2text-generation")
    assert result.text and isinstance(result.text, str)
    assert result.prompt_tokens > 0 and 1 <= result.output_tokens <= 8
    assert result.finish_reason == ("length" if result.output_tokens == 8 else "stop")
    assert result.load_seconds > 0 and result.generate_seconds > 0
    assert result.total_seconds >= result.load_seconds + result.generate_seconds


def test_second_request_spends_no_load_time(tiny_t5_model: Path) -> None:
    service = seq2seq_service(tiny_t5_model)
    service.generate("Hello", GREEDY_8)
    assert service.generate("Hello", GREEDY_8).load_seconds == 0.0


def test_summarization_alias_adds_the_model_prefix(tiny_t5_model: Path) -> None:
    plain = seq2seq_service(tiny_t5_model).generate("Hello world", GREEDY_8)
    summary = seq2seq_service(tiny_t5_model, task="summarization").generate("Hello world", GREEDY_8)
    assert summary.task == "summarization"
    assert summary.prompt_tokens > plain.prompt_tokens


def test_seq2seq_beam_search_runs(tiny_t5_model: Path) -> None:
    result = seq2seq_service(tiny_t5_model).generate("Hello", GenerationParams(max_new_tokens=4, num_beams=3))
    assert 1 <= result.output_tokens <= 4


def test_causal_generate_returns_only_the_new_text(tiny_causal_model: Path) -> None:
    prompt = "What is the capital of France?"
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_model)
    chat = [{"role": "user", "content": prompt}]
    inputs: Any = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    prompt_length = inputs["input_ids"].shape[-1]
    with torch.inference_mode():
        full = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    expected = str(tokenizer.decode(full[0, prompt_length:], skip_special_tokens=True)).strip()

    result = causal_service(tiny_causal_model).generate(prompt, GREEDY_8)

    assert result.text == expected and result.text
    assert result.prompt_tokens == prompt_length
    assert "<|assistant|>" not in result.text and prompt not in result.text


def test_causal_model_uses_the_chat_template(tiny_causal_model: Path) -> None:
    prompt = "Hello world"
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_model)
    plain_length = len(tokenizer(prompt)["input_ids"])
    assert causal_service(tiny_causal_model).generate(prompt, GREEDY_8).prompt_tokens > plain_length


@pytest.mark.parametrize("fixture_name", ["tiny_t5_model", "tiny_causal_model"])
def test_greedy_generation_is_deterministic(fixture_name: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(fixture_name)
    task = "text-generation" if fixture_name == "tiny_causal_model" else "text2text-generation"
    service = NLPService(model=str(folder), task=task)
    assert service.generate("Seven zebras", GREEDY_8).text == service.generate("Seven zebras", GREEDY_8).text


def test_seeded_sampling_is_reproducible(tiny_causal_model: Path) -> None:
    service = causal_service(tiny_causal_model)
    params = GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.5, seed=1234)
    assert service.generate("Hello", params).text == service.generate("Hello", params).text


def test_blank_prompt_is_refused(tiny_causal_model: Path) -> None:
    with pytest.raises(InvalidPrompt) as caught:
        causal_service(tiny_causal_model).generate("   \n", GREEDY_8)
    assert caught.value.message == PROMPT_EMPTY


def test_beam_search_is_refused_for_causal_models(tiny_causal_model: Path) -> None:
    with pytest.raises(InvalidParams) as caught:
        causal_service(tiny_causal_model).generate("Hello", GenerationParams(num_beams=2))
    assert caught.value.errors == {"num_beams": BEAMS_FOR_CAUSAL_ERROR}


# --- Loading -----------------------------------------------------------------------------------


def test_concurrent_cold_requests_load_the_model_once(tiny_causal_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = causal_service(tiny_causal_model)
    loads = count_loads(monkeypatch, service, delay=0.2)
    start_together = threading.Barrier(8)
    results: list[GenerationResult] = []

    def request() -> None:
        start_together.wait()
        results.append(service.generate("Hello", GenerationParams(max_new_tokens=4)))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(loads) == 1
    assert len(results) == 8
    assert len({result.text for result in results}) == 1
    # Requests batched with the first one waited for the load too, so they report it; later batches do not.
    assert sum(result.load_seconds > 0 for result in results) >= 1


def test_warm_up_is_idempotent(tiny_t5_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    service = seq2seq_service(tiny_t5_model)
    with caplog.at_level(logging.INFO, logger="app.services.nlp_service"):
        assert service.warm_up() > 0
        assert service.warm_up() == 0.0
    loaded_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Loaded model")]
    assert len(loaded_lines) == 1 and str(tiny_t5_model) in loaded_lines[0]


def test_failed_load_names_the_model_and_a_fix_then_retry_succeeds(
    tiny_causal_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "model-arrives-later"
    service = causal_service(folder, retry_backoff_seconds=0.0)

    with pytest.raises(ModelUnavailable) as caught:
        service.generate("Hello", GREEDY_8)
    message = caught.value.message
    assert str(folder) in message and "does not exist" in message and "HF_MODEL" in message
    assert any(record.levelno == logging.ERROR and record.exc_info for record in caplog.records)

    shutil.copytree(tiny_causal_model, folder)
    assert service.generate("Hello", GREEDY_8).text


def test_failed_load_backs_off_before_retrying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = causal_service(tmp_path / "missing", retry_backoff_seconds=60.0)
    loads = count_loads(monkeypatch, service)
    for _ in range(3):
        with pytest.raises(ModelUnavailable):
            service.warm_up()
    assert len(loads) == 1


def test_wrong_model_family_says_it_is_not_seq2seq(tiny_causal_model: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        seq2seq_service(tiny_causal_model).warm_up()
    assert "not a seq2seq" in caught.value.message and str(tiny_causal_model) in caught.value.message


# --- Registry ----------------------------------------------------------------------------------


def test_get_service_returns_one_instance_per_task_and_model(tiny_t5_model: Path) -> None:
    first = get_service(model=str(tiny_t5_model), task="text2text-generation")
    assert get_service(model=str(tiny_t5_model), task="text2text-generation") is first
    assert get_service(model=str(tiny_t5_model), task="summarization") is not first
    nlp_service.reset_services()
    assert get_service(model=str(tiny_t5_model), task="text2text-generation") is not first


def test_get_service_rejects_unknown_task() -> None:
    with pytest.raises(UnsupportedTask):
        get_service(model="t5-small", task="fill-mask")


def test_default_service_follows_settings(settings: Settings, tiny_t5_model: Path) -> None:
    settings.HF_MODEL = str(tiny_t5_model)
    settings.HF_TASK = "summarization"
    service = default_service()
    assert (service.model, service.task) == (str(tiny_t5_model), "summarization")
    assert default_service() is service


def test_default_service_without_hf_model_is_the_bundled_model_and_converts_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings.HF_MODEL = ""
    settings.HF_TASK = "text2text-generation"
    settings.DATA_DIR = tmp_path
    service = default_service()
    assert (service.model, service.task, service.is_loaded) == (BUNDLED_MODEL_ID, "text-generation", False)
    assert not (tmp_path / "models").exists()
