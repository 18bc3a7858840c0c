"""HF_DEVICE / HF_DTYPE / HF_THREADS: parsing, resolution (CUDA and MPS mocked: no GPU here), errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from app.domain.generation import GenerationParams
from app.errors import ModelUnavailable
from app.services import device, nlp_service
from app.services.device import (
    CUDA_INDEX_MISSING,
    FLOAT16_ON_CPU,
    INT8_NOT_ON_CPU,
    MPS_MISSING,
    RuntimeProfile,
    RuntimeRequest,
    RuntimeUnavailable,
    apply_runtime,
    resolve_runtime,
    runtime_report,
)
from app.services.engines.transformers_service import NLPService
from app.tests.config.test_settings import load_settings
from django_hf_ml.envconfig import (
    DEVICE_INVALID,
    DTYPE_INVALID,
    THREADS_INVALID,
    parse_device,
    parse_dtype,
    parse_threads,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees two CUDA GPUs with bfloat16 support (no GPU in this environment)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "device", _NullContext)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


class _NullContext:
    def __init__(self, *args: Any) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: Any) -> None:
        return None


# --- syntax (settings) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("auto", "auto"), ("", "auto"), ("cpu", "cpu"), (" CUDA ", "cuda"), ("cuda:0", "cuda:0"), ("Cuda:3", "cuda:3")]
    + [("mps", "mps")],
)
def test_valid_devices_are_normalized(raw: str, expected: str) -> None:
    assert parse_device(raw) == expected


@pytest.mark.parametrize("raw", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "tpu", "cpu:0", "cuda:1234"])
def test_invalid_device_names_the_variable_and_the_choices(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        parse_device(raw)
    assert str(error.value) == DEVICE_INVALID.format(value=raw)
    assert str(error.value).startswith(f"HF_DEVICE={raw!r} is not a device: use auto, cpu, cuda, cuda:N")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "auto"), ("auto", "auto"), ("float32", "float32"), ("FP32", "float32"), ("bf16", "bfloat16")]
    + [("bfloat16", "bfloat16"), ("float16", "float16"), ("fp16", "float16"), (" int8 ", "int8")],
)
def test_valid_dtypes_and_aliases_are_normalized(raw: str, expected: str) -> None:
    assert parse_dtype(raw) == expected


@pytest.mark.parametrize("raw", ["int4", "float64", "double", "8bit"])
def test_invalid_dtype_names_the_variable_and_the_choices(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        parse_dtype(raw)
    assert str(error.value) == DTYPE_INVALID.format(value=raw)
    assert str(error.value).endswith("is not a precision: use one of auto, float32, bfloat16, float16, int8.")


@pytest.mark.parametrize(("raw", "expected"), [("", None), ("auto", None), ("1", 1), (" 8 ", 8), ("1024", 1024)])
def test_valid_thread_counts(raw: str, expected: int | None) -> None:
    assert parse_threads(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5", "1025"])
def test_invalid_thread_count_names_the_variable(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        parse_threads(raw)
    assert str(error.value) == THREADS_INVALID.format(value=raw)


def test_settings_read_device_dtype_threads_from_the_environment(tmp_path: Path) -> None:
    env = {"HF_DEVICE": "CUDA:1", "HF_DTYPE": '"int8"', "HF_THREADS": "3", "HF_WARMUP": "1"}
    result = _settings_values(tmp_path, env)
    assert result == {"device": "cuda:1", "dtype": "int8", "threads": 3, "warmup": True, "torch_imported": False}


def test_settings_defaults_are_auto_and_warmup_unset(tmp_path: Path) -> None:
    env = {"HF_DEVICE": "", "HF_DTYPE": "", "HF_THREADS": "", "HF_WARMUP": ""}
    result = _settings_values(tmp_path, env)
    assert result == {"device": "auto", "dtype": "auto", "threads": None, "warmup": None, "torch_imported": False}


def test_bad_device_stops_settings_import_with_the_message(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"HF_DEVICE": "gpu"})
    assert result.returncode == 1
    assert "HF_DEVICE='gpu' is not a device" in result.stderr


def test_bad_dtype_in_dotenv_stops_settings_import(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {}, dotenv="HF_DTYPE=int4\n")
    assert result.returncode == 1
    assert "HF_DTYPE='int4' is not a precision" in result.stderr


def test_bad_warmup_value_stops_settings_import(tmp_path: Path) -> None:
    result = load_settings(tmp_path, {"HF_WARMUP": "sometimes"})
    assert result.returncode == 1
    assert "HF_WARMUP='sometimes' is not a boolean" in result.stderr


def _settings_values(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'django_hf_ml.settings';"
        "from django.conf import settings;"
        "print(json.dumps({'device': settings.HF_DEVICE, 'dtype': settings.HF_DTYPE, 'threads': settings.HF_THREADS,"
        " 'warmup': settings.HF_WARMUP, 'torch_imported': 'torch' in sys.modules}))"
    )
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    child_env = {**os.environ, "ENV_FILE": str(env_file), "DATA_DIR": str(tmp_path / "data"), **env}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout)
    return values


# --- resolution (mocked accelerators) ----------------------------------------------------------


@pytest.mark.usefixtures("no_gpu")
def test_auto_picks_cpu_and_float32_without_a_gpu() -> None:
    profile = resolve_runtime(RuntimeRequest(device="auto", dtype="auto", threads=3))
    assert profile == RuntimeProfile(
        device="cpu", dtype="float32", threads=3, requested_device="auto", requested_dtype="auto"
    )


@pytest.mark.usefixtures("two_gpus")
def test_auto_picks_the_first_cuda_gpu_with_bfloat16() -> None:
    profile = resolve_runtime(RuntimeRequest(device="auto", dtype="auto", threads=2))
    assert (profile.device, profile.dtype) == ("cuda:0", "bfloat16")


@pytest.mark.usefixtures("two_gpus")
def test_auto_dtype_is_float16_on_a_gpu_without_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_runtime(RuntimeRequest(device="cuda", dtype="auto")).dtype == "float16"


@pytest.mark.usefixtures("two_gpus")
def test_bfloat16_is_refused_on_a_gpu_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cuda:1", dtype="bfloat16"))
    assert str(error.value).startswith("HF_DTYPE=bfloat16 is not supported by cuda:1.")


@pytest.mark.usefixtures("two_gpus")
def test_cuda_with_an_index_picks_that_gpu() -> None:
    assert resolve_runtime(RuntimeRequest(device="cuda:1", dtype="float16")).device == "cuda:1"


@pytest.mark.usefixtures("two_gpus")
def test_plain_cuda_means_the_first_gpu() -> None:
    assert resolve_runtime(RuntimeRequest(device="cuda", dtype="float32")).device == "cuda:0"


@pytest.mark.usefixtures("two_gpus")
def test_cuda_index_beyond_the_visible_gpus_is_an_error() -> None:
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cuda:2"))
    assert str(error.value) == CUDA_INDEX_MISSING.format(value="cuda:2", index=2, count=2, last=1)


@pytest.mark.usefixtures("no_gpu")
def test_requested_cuda_without_a_gpu_is_an_error_not_a_fallback() -> None:
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cuda"))
    message = str(error.value)
    assert message.startswith("HF_DEVICE=cuda asks for a CUDA GPU, but torch sees none (")
    assert message.endswith("Install a CUDA build of torch and a driver, or set HF_DEVICE=cpu (or auto).")


def test_a_cpu_only_torch_build_is_named_as_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cuda:0"))
    assert f"(this torch {torch.__version__} is a CPU-only build)" in str(error.value)


def test_a_broken_cuda_driver_counts_as_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    with pytest.raises(RuntimeUnavailable):
        resolve_runtime(RuntimeRequest(device="cuda"))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_runtime(RuntimeRequest(device="auto")).device == "cpu"


@pytest.mark.usefixtures("no_gpu")
def test_requested_mps_without_metal_is_an_error() -> None:
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="mps"))
    assert str(error.value) == MPS_MISSING


def test_auto_picks_mps_with_float16_on_apple_silicon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    profile = resolve_runtime(RuntimeRequest())
    assert (profile.device, profile.dtype) == ("mps", "float16")


@pytest.mark.usefixtures("two_gpus")
def test_int8_on_a_gpu_is_refused() -> None:
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cuda", dtype="int8"))
    assert str(error.value) == INT8_NOT_ON_CPU.format(device="cuda:0")


def test_float16_on_the_cpu_is_refused() -> None:
    with pytest.raises(RuntimeUnavailable) as error:
        resolve_runtime(RuntimeRequest(device="cpu", dtype="float16"))
    assert str(error.value) == FLOAT16_ON_CPU


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_cpu_accepts_float32_bfloat16_and_int8(dtype: str) -> None:
    assert resolve_runtime(RuntimeRequest(device="cpu", dtype=dtype)).dtype == dtype


def test_default_threads_are_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert resolve_runtime(RuntimeRequest(device="cpu")).threads == 3


def test_default_threads_fall_back_to_cpu_count_without_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert device.available_cpus() == 6


def test_apply_runtime_moves_the_model_to_the_gpu_in_eval_mode() -> None:
    model = _RecordingModel()
    result = apply_runtime(model, RuntimeProfile(device="cuda:1", dtype="float16", threads=1))
    assert result is model
    assert model.calls == ["to:cuda:1", "eval"]


def test_runtime_report_shows_the_error_for_a_missing_device(settings: SettingsWrapper, no_gpu: None) -> None:
    settings.HF_DEVICE, settings.HF_DTYPE, settings.HF_THREADS = "cuda", "auto", 2
    report = runtime_report()
    assert (report["device"], report["dtype"], report["threads"]) == ("cuda", "auto", 2)
    assert str(report["error"]).startswith("HF_DEVICE=cuda asks for a CUDA GPU")


def test_runtime_report_prefers_the_loaded_profile() -> None:
    profile = RuntimeProfile(device="cpu", dtype="int8", threads=2, requested_device="auto", requested_dtype="int8")
    assert runtime_report(profile) == {**profile.to_dict(), "error": None}


class _RecordingModel:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def to(self, where: str) -> _RecordingModel:
        self.calls.append(f"to:{where}")
        return self

    def eval(self) -> _RecordingModel:
        self.calls.append("eval")
        return self


# --- the NLP service uses the profile ----------------------------------------------------------


def test_service_logs_device_dtype_and_threads_at_load(
    tiny_causal_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = NLPService(
        model=str(tiny_causal_model), task="text-generation", runtime=RuntimeRequest(device="cpu", threads=1)
    )
    with caplog.at_level(logging.INFO, logger="app.services.nlp_service"):
        service.warm_up()
    assert service.runtime == RuntimeProfile(
        device="cpu", dtype="float32", threads=1, requested_device="cpu", requested_dtype="auto"
    )
    assert torch.get_num_threads() == 1
    expected = f"Model {tiny_causal_model} runs with device=cpu dtype=float32 threads=1 (HF_DEVICE=cpu, HF_DTYPE=auto)"
    assert expected in caplog.messages


def test_service_loads_bfloat16_weights_when_asked(tiny_causal_model: Path) -> None:
    service = NLPService(model=str(tiny_causal_model), task="text-generation", runtime=RuntimeRequest(dtype="bf16"))
    service.warm_up()
    weights = service.loaded_model().model.get_input_embeddings().weight
    assert weights.dtype == torch.bfloat16
    result = service.generate("Hello", GenerationParams(max_new_tokens=3))
    assert result.output_tokens <= 3


@pytest.mark.usefixtures("no_gpu")
def test_service_with_a_missing_gpu_fails_to_load_naming_hf_device(tiny_causal_model: Path) -> None:
    service = NLPService(model=str(tiny_causal_model), task="text-generation", runtime=RuntimeRequest(device="cuda"))
    with pytest.raises(ModelUnavailable) as error:
        service.warm_up()
    assert "could not be loaded: the configured device or precision is not available on this machine." in str(
        error.value
    )
    assert "HF_DEVICE=cuda asks for a CUDA GPU" in error.value.message
    assert not service.is_loaded


@pytest.mark.usefixtures("no_gpu")
def test_api_answers_503_naming_hf_device_when_the_gpu_is_missing(app_settings: SettingsWrapper) -> None:
    app_settings.HF_DEVICE = "cuda:0"
    nlp_service.reset_services()
    response = Client().post("/api/generate", {"prompt": "Hello"}, content_type="application/json")
    assert response.status_code == 503
    assert "HF_DEVICE=cuda:0 asks for a CUDA GPU" in response.json()["error"]


@pytest.fixture(autouse=True)
def _restore_threads() -> Any:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_run_off_main_thread_returns_the_result_from_another_thread() -> None:
    import threading

    assert device.run_off_main_thread(lambda: threading.current_thread().name) == "measure"


def test_run_off_main_thread_reraises_the_error() -> None:
    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        device.run_off_main_thread(fail)


# --- doctor ---------------------------------------------------------------------------------------


def test_doctor_shows_the_resolved_device_dtype_and_threads(settings: SettingsWrapper, no_gpu: None) -> None:
    from app.services.doctor.checks import check_runtime
    from app.services.doctor.findings import Finding

    settings.HF_DEVICE, settings.HF_DTYPE, settings.HF_THREADS = "auto", "auto", 1
    assert check_runtime(settings) == [
        Finding("OK", "device", "device=cpu dtype=float32 threads=1 (HF_DEVICE=auto, HF_DTYPE=auto)")
    ]


def test_doctor_fails_on_a_missing_gpu_naming_hf_device(settings: SettingsWrapper, no_gpu: None) -> None:
    from app.services.doctor.checks import check_runtime

    settings.HF_DEVICE = "cuda"
    [finding] = check_runtime(settings)
    assert finding.level == "FAIL"
    assert finding.detail.startswith("HF_DEVICE=cuda asks for a CUDA GPU")


def test_doctor_warns_about_int8_and_more_threads_than_cores(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.doctor.checks import check_runtime

    monkeypatch.setattr(device, "available_cpus", lambda: 2)
    settings.HF_DEVICE, settings.HF_DTYPE, settings.HF_THREADS = "cpu", "int8", 8
    findings = check_runtime(settings)
    assert [finding.level for finding in findings] == ["OK", "WARN", "WARN"]
    assert findings[1].detail == "HF_THREADS=8 is more than the 2 core(s) this process may use"
    assert findings[2].fix == "python manage.py quality_guard shows how much"
