"""WSGI entry point: ``gunicorn django_hf_ml.wsgi`` (threaded workers, no ``--preload``)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")

application = get_wsgi_application()
