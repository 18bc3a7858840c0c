"""Helpers for the history browser tests: find the browser's visitor id and seed its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.sessions.backends.db import SessionStore
from playwright.sync_api import Page

from app.domain.ids import utc_now
from app.domain.interaction import Interaction, Scope
from app.services.mongo_repo import get_repository
from app.views._visitor import VISITOR_KEY


def browser_scope(page: Page, base_url: str) -> Scope:
    """Open the history once so the browser has a session, then read its visitor id from the store."""
    page.goto(f"{base_url}/history/")
    key = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "sessionid")
    return Scope(session_id=str(SessionStore(session_key=key).load()[VISITOR_KEY]))


def seed(scope: Scope, prompts: list[str], *, model: str = "tiny", newest: datetime | None = None) -> list[Interaction]:
    """One interaction a minute, the first prompt newest."""
    top = newest or utc_now()
    items = [
        Interaction(
            prompt=prompt,
            output=f"Answer about {prompt.lower()}",
            model=model,
            task="text-generation",
            created_at=top - timedelta(minutes=n),
            **scope.owner_fields(),
        )
        for n, prompt in enumerate(prompts)
    ]
    get_repository().import_batch(items)
    return items


EARLIER = datetime(2026, 1, 1, tzinfo=UTC)
