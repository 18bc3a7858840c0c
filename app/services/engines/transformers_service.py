"""The transformers engine's service: one hub model or model folder, loaded lazily once per process.

``NLPService`` only stores settings when constructed. ``warm_up()`` loads the tokenizer and
model exactly once (a lock with a double check); a failed load becomes ``ModelUnavailable``
for the request and is retried after a short back-off. Requests go through the model's
``ModelWorker`` (``engines.worker``) in batches (``engines.transformers_batch``); ``complete()``
is the single-prompt path (encode, generate, decode) used by beam search and the quality guard.

transformers 5 removed the summarization/translation pipelines, so every seq2seq task
(including those aliases) runs through ``AutoModelForSeq2SeqLM.generate()``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from app.domain.generation import (
    Completion,
    GenerationParams,
    GenerationResult,
    ModelKind,
    Turns,
    check_params_for_task,
    join_turns,
    model_kind,
    validate_task,
)
from app.errors import (
    MODEL_UNAVAILABLE,
    PROMPT_EMPTY,
    InvalidPrompt,
    ModelUnavailable,
)
from app.services.device import (
    RuntimeProfile,
    RuntimeRequest,
    RuntimeUnavailable,
    apply_runtime,
    apply_threads,
    request_from_settings,
    resolve_runtime,
    torch_dtype,
)
from app.services.engines.lazy_worker import LazyWorker
from app.services.engines.transformers_batch import LocalBackend
from app.services.engines.transformers_model import (
    LoadedModel,
    decode_text,
    describe_failure,
    eos_token_ids,
    finish_reason,
    from_pretrained_cache_first,
    looks_like_path,
    task_prefix,
)
from app.services.metrics import observe_model_load

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from app.services.engines.worker import InferenceRequest, ModelWorker, OnFinish

logger = logging.getLogger(__name__)

LOAD_RETRY_BACKOFF_SECONDS = 5.0
FIX_MODEL_SETTING = (
    "Set HF_MODEL to a local model folder or to a hub id already in the Hugging Face cache, "
    "and check that HF_TASK matches the model (text2text-generation for T5/BART-style models, "
    "text-generation for GPT/Llama-style models)."
)


class NLPService:
    """One model for one task, loaded on first use and shared by every request of the process."""

    def __init__(
        self,
        *,
        model: str,
        task: str,
        token: str | None = None,
        runtime: RuntimeRequest | None = None,
        resolve_source: Callable[[], str | Path] | None = None,
        retry_backoff_seconds: float = LOAD_RETRY_BACKOFF_SECONDS,
    ) -> None:
        """Store settings only. ``resolve_source`` returns the folder/hub id to load when it
        differs from ``model`` (the bundled model is converted on first load). ``runtime`` (device, dtype,
        threads) defaults to the HF_DEVICE/HF_DTYPE/HF_THREADS settings, resolved when the model loads."""
        self.model = model
        self.task = validate_task(task)
        self.kind: ModelKind = model_kind(self.task)
        self._runtime_request = runtime
        self.runtime: RuntimeProfile | None = None  # where the model runs, once loaded
        self.device = "cpu"  # the resolved device once loaded: inputs are moved there
        self._token = token or None
        self._resolve_source = resolve_source
        self._retry_backoff_seconds = retry_backoff_seconds
        self._loaded: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._inference_lock = threading.Lock()
        self._last_failure: ModelUnavailable | None = None
        self._last_failure_at = 0.0
        self._worker = LazyWorker(lambda: LocalBackend(self))
        self.on_loaded: Callable[[NLPService], object] | None = None  # the registry's memory budget check

    def __repr__(self) -> str:
        return f"NLPService(model={self.model!r}, task={self.task!r}, loaded={self.is_loaded})"

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    # -- loading --

    def warm_up(self) -> float:
        """Load the model unless already loaded; return the seconds spent (0.0 if it was loaded)."""
        if self._loaded is not None:
            return 0.0
        with self._load_lock:
            if self._loaded is not None:
                return 0.0
            self._raise_if_backing_off()
            started = time.perf_counter()
            self._loaded = self._load_or_raise()
            elapsed = time.perf_counter() - started
        logger.info("Loaded model %s (%s) in %.2fs", self.model, self.task, elapsed)
        observe_model_load(model=self.model, seconds=elapsed)
        if self.on_loaded is not None:
            self.on_loaded(self)
        return elapsed

    def _raise_if_backing_off(self) -> None:
        failure = self._last_failure
        if failure is not None and time.monotonic() - self._last_failure_at < self._retry_backoff_seconds:
            raise ModelUnavailable(failure.message)

    def _load_or_raise(self) -> LoadedModel:
        try:
            loaded = self._load()
        except Exception as exc:
            failure = exc if isinstance(exc, ModelUnavailable) else self._unavailable(describe_failure(exc, self.kind))
            logger.exception("Loading model %s (%s) failed", self.model, self.task)
            self._last_failure, self._last_failure_at = failure, time.monotonic()
            if failure is exc:
                raise
            raise failure from exc
        self._last_failure = None
        return loaded

    def _load(self) -> LoadedModel:
        source = self._source()
        tokenizer = self._load_tokenizer(source)
        model = self._load_model(source)
        return self._prepare(tokenizer, model)

    def _source(self) -> str:
        """The local folder or hub id to load from."""
        source = str(self._resolve_source()) if self._resolve_source else self.model
        if not looks_like_path(source):
            return source
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise self._unavailable(f"the folder {source} does not exist")
        return str(folder)

    def _load_tokenizer(self, source: str) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        tokenizer: PreTrainedTokenizerBase = from_pretrained_cache_first(AutoTokenizer, source, token=self._token)
        return tokenizer

    def _load_model(self, source: str) -> PreTrainedModel:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        profile = self._resolve_runtime()
        apply_threads(profile)
        auto_class = AutoModelForCausalLM if self.kind == "causal" else AutoModelForSeq2SeqLM
        model: PreTrainedModel = from_pretrained_cache_first(
            auto_class, source, token=self._token, dtype=torch_dtype(profile.dtype)
        )
        model = apply_runtime(model, profile)  # device, then int8 quantization when asked; eval mode
        self.runtime, self.device = profile, profile.device
        logger.info("Model %s runs with %s", self.model, profile.describe())
        return model

    def _resolve_runtime(self) -> RuntimeProfile:
        """HF_DEVICE/HF_DTYPE/HF_THREADS (or the constructor's request) for this machine; a missing device
        or an unsupported precision is a clear load error naming the variable, never a silent fallback."""
        try:
            return resolve_runtime(self._runtime_request or request_from_settings())
        except RuntimeUnavailable as exc:
            reason = "the configured device or precision is not available on this machine"
            raise ModelUnavailable(MODEL_UNAVAILABLE.format(model=self.model, reason=reason, fix=str(exc))) from exc

    def _prepare(self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> LoadedModel:
        if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.kind == "causal":
            tokenizer.padding_side = "left"  # batched decoder-only generation needs left padding
        eos_ids = eos_token_ids(tokenizer, model)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=None)
        return LoadedModel(
            tokenizer=tokenizer,
            model=model,
            kind=self.kind,
            prompt_prefix=task_prefix(model, self.task),
            eos_token_ids=eos_ids,
            pad_token_id=pad_id,
        )

    def _unavailable(self, reason: str) -> ModelUnavailable:
        return ModelUnavailable(MODEL_UNAVAILABLE.format(model=self.model, reason=reason, fix=FIX_MODEL_SETTING))

    # -- inference --

    def generate(self, prompt: str, params: GenerationParams, *, messages: Turns = ()) -> GenerationResult:
        """Generate a completion for ``prompt``; raises InvalidPrompt, InvalidParams, ModelUnavailable or QueueFull.

        Goes through the model's inference worker (batched with concurrent requests) and waits for the result.
        Length limits are the caller's (``forms.clean_prompt``); only a blank prompt is refused here.
        """
        return self.submit(prompt, params, messages=messages).wait()

    def submit(
        self, prompt: str, params: GenerationParams, *, on_finish: OnFinish = None, messages: Turns = ()
    ) -> InferenceRequest:
        """Queue ``prompt`` on this model's worker and return the request to stream, wait on or cancel.

        ``messages`` (optional) is the whole conversation ending with ``prompt``'s turn: a causal model
        with a chat template gets every turn through it, other models the turns joined (``join_turns``).
        """
        if not prompt.strip():
            raise InvalidPrompt(PROMPT_EMPTY)
        check_params_for_task(params, self.task)
        return self.worker().submit(prompt, params, on_finish=on_finish, messages=messages)

    def worker(self) -> ModelWorker:
        """This model's inference worker, created on first use (its thread starts with the first request)."""
        return self._worker.get()

    @property
    def queue_length(self) -> int:
        """Requests waiting for this model's worker (0 before the first request)."""
        return self._worker.queue_length

    def loaded_model(self) -> LoadedModel:
        """The loaded tokenizer and model (call ``warm_up()`` first)."""
        loaded = self._loaded
        if loaded is None:
            raise self._unavailable("it was unloaded")
        return loaded

    def memory_bytes(self) -> int:
        """Bytes held by the loaded model's parameters and buffers (0 when not loaded)."""
        loaded = self._loaded
        if loaded is None:
            return 0
        tensors = itertools.chain(loaded.model.parameters(), loaded.model.buffers())
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    def unload(self) -> None:
        """Drop the model (LRU eviction, tests); the next request loads it again."""
        self._worker.stop()
        with self._load_lock:
            was_loaded, self._loaded = self._loaded is not None, None
        if was_loaded:
            logger.info("Unloaded model %s (%s)", self.model, self.task)

    def encode_prompt(self, loaded: LoadedModel, prompt: str, *, messages: Turns = ()) -> dict[str, torch.Tensor]:
        """Token ids (and attention mask) of one prompt, with the chat template or task prefix applied."""
        return self._encode(loaded, prompt, messages)

    def complete(
        self, loaded: LoadedModel, prompt: str, params: GenerationParams, *, messages: Turns = ()
    ) -> Completion:
        """One unbatched, non-streamed generation (beam search, baselines)."""
        with self._inference_lock:
            return self._complete(loaded, prompt, params, messages)

    def _complete(self, loaded: LoadedModel, prompt: str, params: GenerationParams, messages: Turns) -> Completion:
        """Encode, generate and decode one prompt; the caller holds the inference lock."""
        inputs = self._encode(loaded, prompt, messages)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        output_ids = self._generate_ids(loaded, inputs, params)
        new_ids = self._new_token_ids(loaded, output_ids[0], prompt_tokens)
        return Completion(
            text=decode_text(loaded, new_ids),
            prompt_tokens=prompt_tokens,
            output_tokens=len(new_ids),
            finish_reason=finish_reason(loaded, new_ids, params.max_new_tokens),
        )

    def _encode(self, loaded: LoadedModel, prompt: str, messages: Turns = ()) -> dict[str, torch.Tensor]:
        tokenizer = loaded.tokenizer
        if loaded.kind == "causal" and getattr(tokenizer, "chat_template", None):
            turns = [turn.to_dict() for turn in messages] or [{"role": "user", "content": prompt}]
            chat = tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            encoded = cast("Mapping[str, torch.Tensor]", chat)
        else:
            text = join_turns(messages) if messages else prompt
            encoded = tokenizer(loaded.prompt_prefix + text, return_tensors="pt")
        return {name: encoded[name].to(self.device) for name in ("input_ids", "attention_mask") if name in encoded}

    def _generate_ids(
        self, loaded: LoadedModel, inputs: dict[str, torch.Tensor], params: GenerationParams
    ) -> torch.Tensor:
        import torch

        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            output: torch.Tensor = loaded.model.generate(  # type: ignore[operator]
                **inputs, **params.generate_kwargs(), pad_token_id=loaded.pad_token_id
            )
        return output

    @staticmethod
    def _new_token_ids(loaded: LoadedModel, sequence: torch.Tensor, prompt_tokens: int) -> list[int]:
        """Generated ids up to and including the first end-of-sequence token.

        A causal model's output repeats the prompt; a seq2seq output starts with the decoder start token.
        """
        start = prompt_tokens if loaded.kind == "causal" else 1
        new_ids: list[int] = []
        for token_id in sequence[start:].tolist():
            new_ids.append(token_id)
            if token_id in loaded.eos_token_ids:
                break
        return new_ids
