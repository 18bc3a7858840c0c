"""ASGI entry point: ``uvicorn django_hf_ml.asgi:application``.

Uvicorn imports this module in each worker process; with ``HF_WARMUP=1`` the model starts loading in a
background thread right after the application exists (``/readyz`` is 503 until it is ready).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")

application = get_asgi_application()

from app.services.serving import start_serving_process  # noqa: E402  (needs the configured app registry)

start_serving_process()
