"""Template context every page needs: the model named in the header, and the outbox banner."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from app.services.engines.choice import default_engine_name
from app.services.outbox import OutboxError, get_outbox
from django_hf_ml.choices import BUNDLED_MODEL_ID


def model_info(request: HttpRequest) -> dict[str, str]:
    """The configured model's name and engine for the page header (nothing is loaded here)."""
    return {
        "model_name": settings.HF_MODEL or BUNDLED_MODEL_ID,
        "model_task": settings.HF_TASK,
        "model_engine": default_engine_name(),
    }


def outbox_status(request: HttpRequest) -> dict[str, int]:
    """``outbox_depth``: interactions waiting for MongoDB (read from the local outbox, never MongoDB).

    Only a read: the replay worker is started by the write that queued an interaction and by the
    serving process at start-up, not by page renders.
    """
    try:
        return {"outbox_depth": get_outbox().depth()}
    except OutboxError:
        return {"outbox_depth": 0}
