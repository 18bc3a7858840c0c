"""ASGI entry point: ``uvicorn django_hf_ml.asgi:application``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")

application = get_asgi_application()
