"""HF_DTYPE=int8 end to end (tiny models), the quality-guard command and the precision benchmark's table."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from app.domain.generation import GenerationParams
from app.services import nlp_service
from app.services.device import RuntimeRequest, quantize_int8
from app.services.engines.transformers_service import NLPService
from app.services.mongo_repo import get_repository
from app.services.quality import (
    Generation,
    PromptComparison,
    QualityReport,
    format_report,
    prefix_agreement,
    token_overlap,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def int8_app(app_settings: SettingsWrapper) -> SettingsWrapper:
    app_settings.HF_DEVICE, app_settings.HF_DTYPE = "cpu", "int8"
    nlp_service.reset_services()
    return app_settings


def quantized_layers(model: torch.nn.Module) -> tuple[int, int]:
    """(dynamic int8 Linear layers, float Linear layers left)."""
    modules = list(model.modules())
    quantized = sum(isinstance(module, DynamicQuantizedLinear) for module in modules)
    plain = sum(type(module) is torch.nn.Linear for module in modules)
    return quantized, plain


# --- serving -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("int8_app")
def test_api_generates_with_an_int8_model(client: Client) -> None:
    response = client.post(
        "/api/generate", {"prompt": "Hello int8", "params": {"max_new_tokens": 4}}, content_type="application/json"
    )
    assert response.status_code == 201
    data = response.json()
    assert data["status"] == "ok"
    assert data["tokens"]["output"] <= 4
    service = nlp_service.default_service()
    assert service.runtime is not None
    assert (service.runtime.device, service.runtime.dtype) == ("cpu", "int8")
    stored = get_repository().collection.find_one({"prompt": "Hello int8"})
    assert stored is not None
    assert stored["output"] == data["output"]


@pytest.mark.usefixtures("int8_app")
def test_the_served_int8_model_has_every_linear_layer_quantized(client: Client) -> None:
    client.post("/api/generate", {"prompt": "Hi", "params": {"max_new_tokens": 2}}, content_type="application/json")
    model = nlp_service.default_service().loaded_model().model
    quantized, plain = quantized_layers(model)
    assert quantized > 0
    assert plain == 0


@pytest.mark.usefixtures("int8_app")
def test_prompt_form_answers_with_an_int8_model(client: Client) -> None:
    response = client.post("/prompt/", {"prompt": "Form int8", "max_new_tokens": "3"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'class="answer"' in response.content.decode()


def test_int8_greedy_output_is_deterministic(tiny_causal_model: Path) -> None:
    service = NLPService(model=str(tiny_causal_model), task="text-generation", runtime=RuntimeRequest(dtype="int8"))
    params = GenerationParams(max_new_tokens=6)
    first = service.generate("Paris is the capital", params)
    second = service.generate("Paris is the capital", params)
    assert first.text == second.text
    assert first.output_tokens == second.output_tokens


def test_int8_works_for_a_seq2seq_model(tiny_t5_model: Path) -> None:
    service = NLPService(
        model=str(tiny_t5_model), task="text2text-generation", runtime=RuntimeRequest(device="cpu", dtype="int8")
    )
    result = service.generate("summarize: the quick brown fox", GenerationParams(max_new_tokens=4))
    assert result.output_tokens <= 4
    assert quantized_layers(service.loaded_model().model)[0] > 0


def test_quantize_int8_keeps_embeddings_in_float32() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 4))
    quantized = quantize_int8(model)
    assert quantized_layers(quantized) == (2, 0)
    assert quantized[0].weight.dtype == torch.float32


# --- quality guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [((1, 2, 3, 4), (1, 2, 3, 4), 1.0), ((1, 2, 3, 4), (1, 2, 9, 4), 0.5), ((1, 2), (1, 2, 3, 4), 0.5)]
    + [((), (), 1.0), ((5,), (6,), 0.0)],
)
def test_prefix_agreement(reference: tuple[int, ...], candidate: tuple[int, ...], expected: float) -> None:
    assert prefix_agreement(reference, candidate) == expected


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [((1, 2, 3, 4), (4, 3, 2, 1), 1.0), ((1, 2, 3, 4), (1, 2, 5, 6), 0.5), ((1, 1), (1,), 2 / 3), ((), (), 1.0)],
)
def test_token_overlap_is_a_bag_of_tokens_f1(
    reference: tuple[int, ...], candidate: tuple[int, ...], expected: float
) -> None:
    assert token_overlap(reference, candidate) == pytest.approx(expected)


def test_report_summarizes_agreement_and_speed() -> None:
    from app.services.device import RuntimeProfile

    rows = (
        PromptComparison("a", Generation((1, 2), "x y", 0.04), Generation((1, 2), "x y", 0.02)),
        PromptComparison("b", Generation((1, 2, 3, 4), "p", 0.08), Generation((1, 9, 9, 9), "q", 0.04)),
    )
    report = QualityReport(
        reference_runtime=RuntimeProfile(device="cpu", dtype="float32", threads=2),
        candidate_runtime=RuntimeProfile(device="cpu", dtype="int8", threads=2),
        rows=rows,
    )
    assert report.exact_match_rate == 0.5
    assert report.mean_prefix_agreement == pytest.approx((1.0 + 0.25) / 2)
    assert report.reference_ms_per_token == pytest.approx(20.0)
    assert report.candidate_ms_per_token == pytest.approx(10.0)
    assert report.speed_ratio == pytest.approx(2.0)
    lines = format_report(report)
    assert lines[-4] == "Exact-match rate        1/2 (50%)"
    assert lines[-1] == "Per-token time          float32 20.0 ms · int8 10.0 ms → int8 is 2.00× faster"


@pytest.mark.usefixtures("causal_model_settings")
def test_quality_guard_command_prints_the_table_and_summary(settings: SettingsWrapper) -> None:
    settings.HF_DTYPE = "int8"
    out, err = io.StringIO(), io.StringIO()
    call_command("quality_guard", "--prompts", "2", "--max-new-tokens", "4", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("greedy, up to 4 new tokens, 2 prompts: float32 vs int8 on cpu")
    assert lines[1].split() == ["#", "same", "prefix", "overlap", "float32", "ms/tok", "int8", "ms/tok", "prompt"]
    assert lines[2].startswith(" 1  ")
    assert lines[2].endswith("What is the capital of France?")
    assert lines[3].endswith("Name three primary colors.")
    assert lines[5].startswith("Exact-match rate        ")
    assert lines[6].startswith("Token prefix agreement  ")
    assert lines[7].startswith("Token overlap (F1)      ")
    assert lines[8].startswith("Per-token time          float32 ")
    assert "Prompt 2/2 done." in err.getvalue()


@pytest.mark.usefixtures("causal_model_settings")
def test_quality_guard_checks_int8_when_the_setting_is_float32(settings: SettingsWrapper) -> None:
    settings.HF_DTYPE = "auto"
    out, err = io.StringIO(), io.StringIO()
    call_command("quality_guard", "--prompts", "1", "--max-new-tokens", "2", stdout=out, stderr=err)
    assert "The configured precision is float32: checking int8 instead (use --dtype)." in err.getvalue()
    assert out.getvalue().splitlines()[0].endswith("float32 vs int8 on cpu")


@pytest.mark.usefixtures("causal_model_settings")
def test_quality_guard_refuses_a_missing_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CommandError) as error:
        call_command("quality_guard", "--device", "cuda", "--dtype", "float16")
    assert str(error.value).startswith("HF_DEVICE=cuda asks for a CUDA GPU, but torch sees none")


@pytest.mark.usefixtures("causal_model_settings")
def test_quality_guard_refuses_a_bad_dtype_option() -> None:
    with pytest.raises(CommandError) as error:
        call_command("quality_guard", "--dtype", "int4")
    assert str(error.value).startswith("HF_DTYPE='int4' is not a precision")


# --- benchmark ------------------------------------------------------------------------------------


def test_precision_benchmark_prints_its_table(
    tiny_causal_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("precision_bench", ROOT / "bench" / "precision_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "precision_bench", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    arguments = ["--model", str(tiny_causal_model), "--dtypes", "float32,int8", "--batches", "1,2"]
    assert bench.main([*arguments, "--new-tokens", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("dtype     batch  load s  ms/token  tokens/s   speed  same ids")
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    assert [(row[0], row[1], row[5], row[6]) for row in rows[::2]] == [("float32", "1", "1.00x", "100%")] + [
        ("float32", "2", "1.00x", "100%")
    ]
    assert [(row[0], row[1]) for row in rows[1::2]] == [("int8", "1"), ("int8", "2")]
    assert lines[header + 5].startswith("float32 batch 2 vs batch 1: ")
