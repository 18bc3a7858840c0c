from __future__ import annotations

from django.apps import AppConfig


class InteractionsConfig(AppConfig):
    """Registers system checks only: nothing heavy runs here (it runs for every command)."""

    name = "app"
    verbose_name = "Prompt interactions"

    def ready(self) -> None:
        from app import checks  # noqa: F401  (registers the checks)
