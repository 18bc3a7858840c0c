"""The task names the NLP service understands, importable without torch.

transformers 5 removed the ``text2text-generation``, ``summarization`` and ``translation``
pipelines; we keep those names working by running seq2seq models through ``generate()``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

SEQ2SEQ = "text2text-generation"
CAUSAL = "text-generation"
SUPPORTED_TASKS: tuple[str, ...] = (SEQ2SEQ, CAUSAL)
SEQ2SEQ_ALIASES: tuple[str, ...] = ("summarization", "translation")


def canonical_task(task: str) -> str | None:
    """Map a task name (or a seq2seq alias such as ``translation_en_to_fr``) to a supported task."""
    if task in SUPPORTED_TASKS:
        return task
    if task in SEQ2SEQ_ALIASES or (task.startswith("translation_") and "_to_" in task):
        return SEQ2SEQ
    return None


def validate_task_name(variable: str, task: str) -> str:
    canonical = canonical_task(task)
    if canonical is None:
        allowed = ", ".join(SUPPORTED_TASKS + SEQ2SEQ_ALIASES)
        raise ImproperlyConfigured(f"{variable}={task!r} is not a supported task. Supported: {allowed}.")
    return canonical
