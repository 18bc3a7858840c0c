"""The figures the stats page shows: ranges, time buckets, per-model and per-bucket figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Bucket = Literal["hour", "day"]
BUCKET_FORMATS: dict[Bucket, str] = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
BUCKET_STEPS: dict[Bucket, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class StatsRange:
    key: str
    label: str
    bucket: Bucket
    buckets: int | None  # how many buckets the range spans; None = everything

    def since(self, now: datetime) -> datetime | None:
        """The first instant inside the range (aligned to the bucket), or None for everything."""
        if self.buckets is None:
            return None
        return bucket_floor(now, self.bucket) - BUCKET_STEPS[self.bucket] * (self.buckets - 1)


RANGES: dict[str, StatsRange] = {
    "24h": StatsRange("24h", "Last 24 hours", "hour", 24),
    "7d": StatsRange("7d", "Last 7 days", "day", 7),
    "30d": StatsRange("30d", "Last 30 days", "day", 30),
    "all": StatsRange("all", "All time", "day", None),
}
DEFAULT_RANGE = "7d"


@dataclass(frozen=True)
class Figures:
    """Counts and timings of one group of interactions (a model/task, a time bucket, or all)."""

    interactions: int = 0
    errors: int = 0
    cancelled: int = 0
    timed: int = 0  # successful, uncached interactions with a generation time
    output_tokens: int = 0  # of the timed interactions
    generate_ms: float = 0.0  # of the timed interactions
    p50_ms: float | None = None
    p95_ms: float | None = None
    first_token_count: int = 0
    first_token_p50_ms: float | None = None
    first_token_p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.interactions if self.interactions else 0.0

    @property
    def cancel_rate(self) -> float:
        return self.cancelled / self.interactions if self.interactions else 0.0

    @property
    def tokens_per_second(self) -> float | None:
        return self.output_tokens / (self.generate_ms / 1000) if self.generate_ms > 0 else None


@dataclass(frozen=True)
class ModelStats:
    model: str
    task: str
    figures: Figures


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime
    label: str
    figures: Figures
    tick: str = ""  # short axis label


@dataclass(frozen=True)
class StatsReport:
    range: StatsRange
    since: datetime | None
    until: datetime
    models: list[ModelStats]
    series: list[SeriesPoint]
    overall: Figures
    seconds: float = 0.0

    @property
    def is_empty(self) -> bool:
        return self.overall.interactions == 0


def get_range(key: str) -> StatsRange:
    """The range for ``key`` (``KeyError`` when unknown; forms validate before this)."""
    return RANGES[key]


def bucket_floor(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_label(start: datetime, bucket: Bucket) -> str:
    return start.strftime("%m-%d %H:00") if bucket == "hour" else start.strftime("%Y-%m-%d")


def bucket_tick(start: datetime, bucket: Bucket) -> str:
    """A short axis label: the hour for hourly buckets, month-day for daily ones."""
    return start.strftime("%H:00") if bucket == "hour" else start.strftime("%m-%d")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty): the smallest value with at least
    ``fraction`` of the values at or below it. Matches ``$percentile`` on small inputs."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])
