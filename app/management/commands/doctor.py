"""``python manage.py doctor``: check .env, settings, MongoDB, the model, torch, static files, outbox."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from app.services.doctor.checks import settings_checks
from app.services.doctor.env_file import ROOT, check_env_file, check_missing, env_file_path, env_values, known_variables
from app.services.doctor.findings import report


class Command(BaseCommand):
    help = "Diagnose the setup: one OK/WARN/FAIL line per check with the fix. Exit status 1 when a check fails."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--env-file", default=None, help="The .env file to check (default: ENV_FILE or ./.env).")

    def handle(self, *args: Any, **options: Any) -> None:
        from pathlib import Path

        env_file = Path(options["env_file"]) if options["env_file"] else env_file_path()
        findings = check_env_file(env_file, known_variables(ROOT / ".env.example"))
        findings += check_missing(env_values(env_file))
        findings += settings_checks(settings)
        status = report(findings, self.stdout)
        if status:
            raise SystemExit(status)
