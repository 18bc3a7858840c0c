#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_hf_ml.settings")
    if sys.argv[1:2] == ["doctor"]:
        # The doctor must also explain settings that refuse to load (bad .env values).
        from app.services.doctor.env_file import run_if_settings_broken

        run_if_settings_broken()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
