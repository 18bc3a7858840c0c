"""Where and how the model runs: device, precision (dtype) and torch threads.

Three layers, so settings stay free of torch:

- ``django_hf_ml.envconfig.parse_device`` / ``parse_dtype`` / ``parse_threads`` check the *syntax*
  of ``HF_DEVICE``, ``HF_DTYPE`` and ``HF_THREADS`` when settings are read (``ImproperlyConfigured``
  naming the variable and the allowed values).
- ``resolve_runtime`` imports torch and turns the request into a ``RuntimeProfile`` (``auto``
  becomes a real device and dtype). A device that is asked for but missing, or a dtype the device
  cannot run, raises ``RuntimeUnavailable`` naming the variable: never a silent fallback.
- ``apply_runtime`` takes a model loaded in the profile's dtype (``torch_dtype``), moves it to
  the device and quantizes it (``int8``: dynamic quantization of ``torch.nn.Linear``, CPU only).

``describe_runtime()`` resolves the configured settings for logs, ``/readyz`` and ``doctor``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_hf_ml.choices import DEVICE_VARIABLE, DTYPE_VARIABLE
from django_hf_ml.envconfig import parse_device, parse_dtype

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)
T = TypeVar("T")

CUDA_MISSING = (
    f"{DEVICE_VARIABLE}={{value}} asks for a CUDA GPU, but torch sees none ({{why}}). "
    f"Install a CUDA build of torch and a driver, or set {DEVICE_VARIABLE}=cpu (or auto)."
)
CUDA_INDEX_MISSING = (
    f"{DEVICE_VARIABLE}={{value}} asks for GPU {{index}}, but torch sees {{count}} GPU(s) (indexes 0..{{last}}). "
    f"Use an index that exists, or {DEVICE_VARIABLE}=cuda for the first GPU."
)
MPS_MISSING = (
    f"{DEVICE_VARIABLE}=mps asks for Apple's Metal GPU, but torch reports it unavailable "
    f"(it needs macOS 12.3+ on Apple silicon). Set {DEVICE_VARIABLE}=cpu (or auto)."
)
INT8_NOT_ON_CPU = (
    f"{DTYPE_VARIABLE}=int8 (dynamic quantization) runs on the CPU only, but {DEVICE_VARIABLE} resolved to {{device}}. "
    f"Use {DTYPE_VARIABLE}=float16 or bfloat16 on a GPU, or {DEVICE_VARIABLE}=cpu."
)
FLOAT16_ON_CPU = (
    f"{DTYPE_VARIABLE}=float16 is refused on the CPU: most CPU kernels are slow or missing in half precision and "
    f"it gains nothing there. Use {DTYPE_VARIABLE}=int8 (faster, slightly different text), bfloat16, or float32."
)
BFLOAT16_UNSUPPORTED = (
    f"{DTYPE_VARIABLE}=bfloat16 is not supported by {{device}}. Use {DTYPE_VARIABLE}=float16 or float32 "
    f"(or {DTYPE_VARIABLE}=auto)."
)


class RuntimeUnavailable(ImproperlyConfigured):
    """The requested device or precision cannot be used on this machine; the message names the variable."""


@dataclass(frozen=True)
class RuntimeRequest:
    """What the settings ask for (syntax already checked; nothing resolved yet)."""

    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None  # None: all the cores this process may use


@dataclass(frozen=True)
class RuntimeProfile:
    """Where a model actually runs: for the load log line, ``/readyz`` and ``doctor``."""

    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32", "bfloat16", "float16" or "int8"
    threads: int  # torch intra-op threads
    requested_device: str = "auto"
    requested_dtype: str = "auto"

    def to_dict(self) -> dict[str, str | int]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for logs and command output."""
        return (
            f"device={self.device} dtype={self.dtype} threads={self.threads} "
            f"({DEVICE_VARIABLE}={self.requested_device}, {DTYPE_VARIABLE}={self.requested_dtype})"
        )


# --- Syntax (settings import time: no torch) ----------------------------------------------------


def available_cpus() -> int:
    """The cores this process may run on (CPU affinity / cpuset where the OS tells, else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:  # pragma: no cover - some sandboxes refuse the call
            pass
    return max(1, os.cpu_count() or 1)


def request_from_settings() -> RuntimeRequest:
    """The runtime the Django settings ask for."""
    return RuntimeRequest(
        device=getattr(settings, "HF_DEVICE", "auto"),
        dtype=getattr(settings, "HF_DTYPE", "auto"),
        threads=getattr(settings, "HF_THREADS", None),
    )


# --- Resolution (needs torch) -------------------------------------------------------------------


def resolve_runtime(request: RuntimeRequest) -> RuntimeProfile:
    """Turn a request into a profile this machine can run, or raise ``RuntimeUnavailable``."""
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device=device)
    threads = request.threads or available_cpus()
    return RuntimeProfile(
        device=device,
        dtype=dtype,
        threads=threads,
        requested_device=request.device,
        requested_dtype=request.dtype,
    )


def describe_runtime(request: RuntimeRequest | None = None) -> RuntimeProfile:
    """The profile for the configured settings (or ``request``); raises ``RuntimeUnavailable``."""
    return resolve_runtime(request or request_from_settings())


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda:0`` when a CUDA GPU is visible, else ``mps`` when available, else ``cpu``."""
    import torch

    requested = parse_device(requested)
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        if _cuda_count(torch) > 0:
            return "cuda:0"
        return "mps" if _mps_available(torch) else "cpu"
    if requested == "mps":
        if not _mps_available(torch):
            raise RuntimeUnavailable(MPS_MISSING)
        return "mps"
    count = _cuda_count(torch)
    if count == 0:
        raise RuntimeUnavailable(CUDA_MISSING.format(value=requested, why=_why_no_cuda(torch)))
    index = int(requested.partition(":")[2] or 0)
    if index >= count:
        raise RuntimeUnavailable(CUDA_INDEX_MISSING.format(value=requested, index=index, count=count, last=count - 1))
    return f"cuda:{index}"


def resolve_dtype(requested: str, *, device: str) -> str:
    """``auto`` → float32 on CPU, bfloat16 (or float16) on CUDA, float16 on MPS; refuse what cannot run."""
    import torch

    requested = parse_dtype(requested)
    kind = device.partition(":")[0]
    if requested == "auto":
        if kind == "cuda":
            return "bfloat16" if _cuda_bf16_supported(torch, device) else "float16"
        return "float16" if kind == "mps" else "float32"
    if requested == "int8" and kind != "cpu":
        raise RuntimeUnavailable(INT8_NOT_ON_CPU.format(device=device))
    if requested == "float16" and kind == "cpu":
        raise RuntimeUnavailable(FLOAT16_ON_CPU)
    if requested == "bfloat16" and kind == "cuda" and not _cuda_bf16_supported(torch, device):
        raise RuntimeUnavailable(BFLOAT16_UNSUPPORTED.format(device=device))
    return requested


def torch_dtype(dtype: str) -> torch.dtype:
    """The floating-point dtype to load weights in (int8 loads float32, then quantizes)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.float32}[
        dtype
    ]


def apply_threads(profile: RuntimeProfile) -> None:
    """Set torch's intra-op thread count for this process (process-wide)."""
    import torch

    if torch.get_num_threads() != profile.threads:
        torch.set_num_threads(profile.threads)


def apply_runtime(model: Any, profile: RuntimeProfile) -> Any:
    """Move a loaded model to the profile's device and precision; return the model to use (eval mode)."""
    model = model.to(profile.device)
    if profile.dtype == "int8":
        model = quantize_int8(model)
    return model.eval()


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of every ``torch.nn.Linear`` (weights int8, activations quantized per call).

    ``torch.ao.quantization`` is deprecated in favour of torchao but still ships with the pinned torch;
    its deprecation warnings are silenced here so that they do not flood the server log.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _cuda_count(torch_module: Any) -> int:
    try:
        return int(torch_module.cuda.device_count()) if torch_module.cuda.is_available() else 0
    except Exception:  # a broken driver makes these calls raise; treat it as "no GPU" with the reason below
        logger.debug("CUDA probe failed", exc_info=True)
        return 0


def _why_no_cuda(torch_module: Any) -> str:
    if getattr(torch_module.version, "cuda", None) is None:
        return f"this torch {torch_module.__version__} is a CPU-only build"
    return f"torch {torch_module.__version__} was built for CUDA {torch_module.version.cuda} but finds no usable GPU"


def _cuda_bf16_supported(torch_module: Any, device: str) -> bool:
    try:
        with torch_module.cuda.device(device):
            return bool(torch_module.cuda.is_bf16_supported())
    except Exception:
        logger.debug("bfloat16 probe failed on %s", device, exc_info=True)
        return False


def _mps_available(torch_module: Any) -> bool:
    backend = getattr(torch_module.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def runtime_report(loaded: RuntimeProfile | None = None) -> dict[str, object]:
    """Device, dtype and threads for ``/readyz`` and ``doctor``: the loaded model's profile when there is one,
    else what the settings resolve to here; ``error`` says why a requested device/precision cannot run."""
    if loaded is not None:
        return {**loaded.to_dict(), "error": None}
    request = request_from_settings()
    try:
        return {**resolve_runtime(request).to_dict(), "error": None}
    except RuntimeUnavailable as exc:
        return {
            "device": request.device,
            "dtype": request.dtype,
            "threads": request.threads or available_cpus(),
            "requested_device": request.device,
            "requested_dtype": request.dtype,
            "error": str(exc),
        }


def run_off_main_thread(function: Callable[[], T]) -> T:
    """Run ``function`` in a fresh thread and return its result (or raise its exception).

    The server generates in its inference worker thread, never in the main thread. Measurements must do
    the same: on a CPU shared with other work, torch's OpenMP pool in the main thread measured 10-15x
    slower per token than the same ``generate()`` in another thread (2 cores, load average ~7).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="measure")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])
