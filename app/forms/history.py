"""Input parsing for the history pages and API: query string → ``HistoryFilter`` (or clear messages)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms

from app.domain.filters import MAX_PAGE_SIZE, HistoryFilter
from app.domain.marks import normalize_tag
from app.errors import (
    HISTORY_BAD_DATE,
    HISTORY_BAD_LIMIT,
    HISTORY_DATE_ORDER,
    HISTORY_QUERY_TOO_LONG,
    IMPORT_NO_FILE,
    IMPORT_TOO_LARGE,
    InvalidCursor,
    InvalidTags,
)
from app.services.history import PAGE_SIZE, STATUSES
from app.services.mongo_documents import decode_cursor
from app.services.search.query import parse
from app.services.search.service import MODES, SORTS, merge_filters, ranked_offset

MAX_QUERY_CHARS = 200
IMPORT_MAX_MB = 50
FILTER_FIELDS: tuple[str, ...] = ("q", "model", "task", "status", "since", "until", "sort", "mode", "starred", "tag")


def parse_moment(value: str, *, end_of_day: bool) -> datetime:
    """``YYYY-MM-DD`` (a whole UTC day) or an ISO 8601 date and time; naive times are UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise forms.ValidationError(HISTORY_BAD_DATE, code="bad_date") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class HistoryFilterForm(forms.Form):
    """The filters, search and cursor of a history listing (all optional, all in the URL)."""

    q = forms.CharField(
        required=False,
        strip=False,
        max_length=MAX_QUERY_CHARS,
        error_messages={"max_length": HISTORY_QUERY_TOO_LONG.format(limit=MAX_QUERY_CHARS)},
    )
    model = forms.CharField(required=False, max_length=200)
    task = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *((s, s) for s in STATUSES)])
    since = forms.CharField(required=False, max_length=40)
    until = forms.CharField(required=False, max_length=40)
    cursor = forms.CharField(required=False, max_length=200)
    # Search: "relevance" (default with text) or "newest"; "hybrid" (default), "keyword", "semantic".
    sort = forms.ChoiceField(required=False, choices=[("", "Best match"), *((s, s) for s in SORTS)])
    mode = forms.ChoiceField(required=False, choices=[("", "Automatic"), *((m, m) for m in MODES)])
    # Marks: only starred interactions (``starred=1``); only those with a tag (``tag=geo``, like ``tag:geo``).
    starred = forms.BooleanField(required=False)
    tag = forms.CharField(required=False, max_length=100)

    def clean_tag(self) -> str:
        value = (self.cleaned_data.get("tag") or "").strip()
        if not value:
            return ""
        try:
            return normalize_tag(value)
        except InvalidTags as exc:
            raise forms.ValidationError(exc.message, code="bad_tag") from None

    def clean_since(self) -> datetime | None:
        value = self.cleaned_data.get("since") or ""
        return parse_moment(value, end_of_day=False) if value.strip() else None

    def clean_until(self) -> datetime | None:
        value = self.cleaned_data.get("until") or ""
        return parse_moment(value, end_of_day=True) if value.strip() else None

    def clean_cursor(self) -> str | None:
        value = (self.cleaned_data.get("cursor") or "").strip()
        if not value:
            return None
        if ranked_offset(value) is not None:  # a ranked search's offset cursor (app/services/search/service.py)
            return value
        try:
            decode_cursor(value)
        except InvalidCursor as exc:
            raise forms.ValidationError(exc.message, code="bad_cursor") from None
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and since >= until:
            self.add_error("until", HISTORY_DATE_ORDER)
        return cleaned

    def to_filter(self) -> HistoryFilter:
        """The form's filters narrowed by the search box's ``model:``/``status:``/``before:``/``after:``."""
        data = self.cleaned_data
        form_filter = HistoryFilter(
            model=(data.get("model") or "").strip(),
            task=(data.get("task") or "").strip(),
            status=data.get("status") or "",
            since=data.get("since"),
            until=data.get("until"),
            starred=bool(data.get("starred")),
            tags=(data["tag"],) if data.get("tag") else (),
        )
        return merge_filters(parse(self.query_text()), form_filter)

    def query_text(self) -> str:
        return str(self.cleaned_data.get("q") or "")

    def search_arguments(self) -> dict[str, Any]:
        """What ``history_search`` takes from a valid form: filters, text, cursor, sort and mode."""
        data = self.cleaned_data
        return {
            "filters": self.to_filter(),
            "text": self.query_text(),
            "cursor": self.page_cursor(),
            "sort": data.get("sort") or "",
            "mode": data.get("mode") or "",
        }

    def page_cursor(self) -> str | None:
        return self.cleaned_data.get("cursor")

    def errors_by_field(self) -> dict[str, str]:
        return {name: " ".join(str(message) for message in messages) for name, messages in self.errors.items()}

    def filter_query(self, **overrides: str) -> str:
        """The filters as a query string (no cursor), for links: export, load more, clear."""
        params = {name: self.data.get(name, "") for name in FILTER_FIELDS}
        params.update(overrides)
        return urlencode({name: value for name, value in params.items() if value})

    @property
    def is_filtered(self) -> bool:
        return any((self.data.get(name) or "").strip() for name in FILTER_FIELDS)


class HistoryApiForm(HistoryFilterForm):
    """The API adds ``limit``."""

    limit = forms.CharField(required=False, max_length=10)

    def clean_limit(self) -> int:
        value = (self.cleaned_data.get("limit") or "").strip()
        if not value:
            return PAGE_SIZE
        if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
            raise forms.ValidationError(HISTORY_BAD_LIMIT.format(maximum=MAX_PAGE_SIZE), code="bad_limit")
        return int(value)


def filter_form(data: Mapping[str, Any], *, api: bool = False) -> HistoryFilterForm:
    form_class = HistoryApiForm if api else HistoryFilterForm
    return form_class(data)


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="JSON Lines file")

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if upload is None:
            raise forms.ValidationError(IMPORT_NO_FILE, code="no_file")
        if upload.size > IMPORT_MAX_MB * 1024 * 1024:
            raise forms.ValidationError(IMPORT_TOO_LARGE.format(limit=IMPORT_MAX_MB), code="too_large")
        return upload
