from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from django_hf_ml.choices import BUNDLED_MODEL_ID


def model_info(request: HttpRequest) -> dict[str, str]:
    """The configured model's name for the page header (nothing is loaded here)."""
    return {"model_name": settings.HF_MODEL or BUNDLED_MODEL_ID, "model_task": settings.HF_TASK}
