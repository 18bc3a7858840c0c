"""The task names the NLP service understands, importable without torch (settings use it).

transformers 5 removed the ``text2text-generation``, ``summarization`` and ``translation``
pipelines; we keep those names working by running seq2seq models through ``generate()``.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

SEQ2SEQ_TASK = "text2text-generation"
CAUSAL_TASK = "text-generation"
SUPPORTED_TASKS: tuple[str, ...] = (SEQ2SEQ_TASK, CAUSAL_TASK)
SEQ2SEQ_ALIASES: tuple[str, ...] = ("summarization", "translation")
TRANSLATION_PAIR_PATTERN = re.compile(r"translation_[a-z]{2,3}_to_[a-z]{2,3}")
ALL_TASK_NAMES: tuple[str, ...] = (*SUPPORTED_TASKS, *SEQ2SEQ_ALIASES, "translation_xx_to_yy")


def normalize_task(task: str) -> str | None:
    """The task name as the service uses it, or None when it is not supported."""
    normalized = task.strip().lower()
    if normalized in SUPPORTED_TASKS or normalized in SEQ2SEQ_ALIASES:
        return normalized
    if TRANSLATION_PAIR_PATTERN.fullmatch(normalized):
        return normalized
    return None


def validate_task_name(variable: str, task: str) -> str:
    """Start-up check for a task setting: ``ImproperlyConfigured`` names the variable and the choices."""
    normalized = normalize_task(task)
    if normalized is None:
        raise ImproperlyConfigured(
            f"{variable}={task!r} is not a supported task. Supported: {', '.join(ALL_TASK_NAMES)}."
        )
    return normalized
