"""Input of the stats page: which time range to show."""

from __future__ import annotations

from django import forms

from app.domain.stats import DEFAULT_RANGE, RANGES
from app.errors import STATS_RANGE_INVALID

RANGE_CHOICES = [(key, stats_range.label) for key, stats_range in RANGES.items()]


class StatsRangeForm(forms.Form):
    range = forms.ChoiceField(
        choices=RANGE_CHOICES,
        required=False,
        error_messages={"invalid_choice": STATS_RANGE_INVALID.format(choices=", ".join(RANGES))},
    )

    def range_key(self) -> str:
        """The chosen range (the default when none was given); call after ``is_valid()``."""
        return self.cleaned_data.get("range") or DEFAULT_RANGE
