"""WSGI entry point: ``gunicorn django_hf_ml.wsgi`` (threaded workers, no ``--preload``).

Gunicorn imports this module in each worker, the process that serves. With ``HF_WARMUP=1`` the worker
starts loading the model in a background thread right after the application exists (``/readyz`` is
503 until it is ready); management commands never import this module, so they load nothing.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")

application = get_wsgi_application()

from app.services.serving import start_serving_process  # noqa: E402  (needs the configured app registry)

start_serving_process()
