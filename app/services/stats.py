"""Usage statistics: per model and task, over a time range, with a per-hour/per-day series.

Everything is computed by one MongoDB aggregation: ``$match`` on the visitor's scope and
``created_at`` (both indexed, so only the chosen range is read), a ``$project`` of the few fields
needed, then a ``$facet`` that ``$group``s the same documents three ways (per model and task, per
time bucket, overall) and ``$sort``s them. Latency percentiles use the ``$percentile``
accumulator (MongoDB 7+, Atlas, SecantusDB). A server without it gets the same figures from a
bounded, index-sorted sample of the newest interactions, computed here in Python.

Definitions (shown on the page too):

* latency = ``durations_ms.generate_ms`` of successful, uncached interactions (the model's own time);
* tokens per second = output tokens / generation seconds, summed over those same interactions;
* time to first token = ``durations_ms.first_token_ms`` where it was recorded (streamed answers);
* error / cancel rate = interactions with status ``error`` / ``cancelled`` over all interactions.

Time buckets and ranges are in UTC: "24h" is the last 24 clock hours (current hour included),
"7d"/"30d" the last 7/30 calendar days (today included), "all" everything.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo import DESCENDING
from pymongo.errors import OperationFailure

from app.services.mongo_repo import (
    STATUS_CANCELLED,
    STATUS_ERROR,
    STATUS_OK,
    InteractionRepository,
    Scope,
    get_repository,
    store_errors,
    utc_now,
)

logger = logging.getLogger(__name__)

LATENCY_FIELD = "durations_ms.generate_ms"
FIRST_TOKEN_FIELD = "durations_ms.first_token_ms"
PERCENTILES = (0.5, 0.95)
# Without $percentile, percentiles come from at most this many of the newest interactions in range.
PERCENTILE_SAMPLE_LIMIT = 20_000
# "all" fills days without interactions only while the series stays this short.
MAX_FILLED_BUCKETS = 1_100

Bucket = Literal["hour", "day"]
PercentileMethod = Literal["auto", "server", "sample"]
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
    percentile_method: Literal["server", "sample"]
    sample_size: int | None = None  # interactions behind the percentiles when sampled
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


# --- The aggregation --------------------------------------------------------------------------


def scope_match(scope: Scope, *, since: datetime | None) -> dict[str, Any]:
    """The scope's own filter (an indexed owner, or nothing when shared) and the range on ``created_at``.

    A shared scope sees every owner, so interactions deleted but still restorable (they carry
    ``deleted_at`` until the undo window ends) are left out explicitly.
    """
    match: dict[str, Any] = dict(scope.query())
    if not match:
        match["deleted_at"] = {"$exists": False}
    if since is not None:
        match["created_at"] = {"$gte": since}
    return match


def _is_timed() -> dict[str, Any]:
    return {
        "$and": [
            {"$eq": ["$status", STATUS_OK]},
            {"$ne": ["$cached", True]},
            {"$gt": [f"${LATENCY_FIELD}", 0]},
        ]
    }


def _count_if(condition: dict[str, Any]) -> dict[str, Any]:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _projection(bucket: Bucket) -> dict[str, Any]:
    """Only the fields the groups need, computed once per document."""
    return {
        "_id": 0,
        "model": {"$ifNull": ["$model", ""]},
        "task": {"$ifNull": ["$task", ""]},
        "bucket": {"$dateToString": {"format": BUCKET_FORMATS[bucket], "date": "$created_at"}},
        "error": {"$cond": [{"$eq": ["$status", STATUS_ERROR]}, 1, 0]},
        "cancelled": {"$cond": [{"$eq": ["$status", STATUS_CANCELLED]}, 1, 0]},
        "latency": {"$cond": [_is_timed(), f"${LATENCY_FIELD}", None]},
        "tokens": {"$cond": [_is_timed(), {"$ifNull": ["$output_tokens", 0]}, 0]},
        "first_token": {"$cond": [{"$gt": [f"${FIRST_TOKEN_FIELD}", 0]}, f"${FIRST_TOKEN_FIELD}", None]},
    }


def _accumulators(*, with_percentiles: bool) -> dict[str, Any]:
    accumulators: dict[str, Any] = {
        "interactions": {"$sum": 1},
        "errors": {"$sum": "$error"},
        "cancelled": {"$sum": "$cancelled"},
        "timed": _count_if({"$gt": ["$latency", None]}),
        "output_tokens": {"$sum": "$tokens"},
        "generate_ms": {"$sum": {"$ifNull": ["$latency", 0]}},
        "first_token_count": _count_if({"$gt": ["$first_token", None]}),
    }
    if with_percentiles:
        for name, source in (("latency_p", "$latency"), ("first_token_p", "$first_token")):
            accumulators[name] = {"$percentile": {"input": source, "p": list(PERCENTILES), "method": "approximate"}}
    return accumulators


def stats_pipeline(
    *, scope: Scope, since: datetime | None, bucket: Bucket, with_percentiles: bool
) -> list[dict[str, Any]]:
    """The aggregation behind the stats page (public so the benchmark and tests can run it)."""
    match = scope_match(scope, since=since)
    accumulators = _accumulators(with_percentiles=with_percentiles)
    return [
        {"$match": match},
        {"$project": _projection(bucket)},
        {
            "$facet": {
                "models": [
                    {"$group": {"_id": {"model": "$model", "task": "$task"}, **accumulators}},
                    {"$sort": {"interactions": -1, "_id.model": 1, "_id.task": 1}},
                ],
                "series": [{"$group": {"_id": "$bucket", **accumulators}}, {"$sort": {"_id": 1}}],
                "overall": [{"$group": {"_id": None, **accumulators}}],
            }
        },
    ]


# $percentile is MongoDB 7.0+: remember which repositories' servers lack it (tried once each).
_no_percentile_repositories: weakref.WeakSet[InteractionRepository] = weakref.WeakSet()
UNSUPPORTED_OPERATOR_CODES = frozenset({15952, 168, 40324, 5787902})


def compute_stats(
    *,
    scope: Scope,
    range_key: str = DEFAULT_RANGE,
    now: datetime | None = None,
    repository: InteractionRepository | None = None,
    percentile_method: PercentileMethod = "auto",
) -> StatsReport:
    """Figures for ``scope`` over the range ``range_key``; raises ``StoreUnavailable`` when the store is down."""
    started = time.perf_counter()
    stats_range = get_range(range_key)
    now = now or utc_now()
    since = stats_range.since(now)
    repository = repository or get_repository()
    use_server = percentile_method == "server" or (
        percentile_method == "auto" and repository not in _no_percentile_repositories
    )
    result: dict[str, Any] | None = None
    if use_server:
        result = _aggregate(
            repository,
            scope=scope,
            since=since,
            bucket=stats_range.bucket,
            percentiles=True,
            fallback_allowed=percentile_method == "auto",
        )
    method: Literal["server", "sample"] = "server" if result is not None else "sample"
    sample: list[dict[str, Any]] | None = None
    if result is None:
        result = _aggregate(
            repository, scope=scope, since=since, bucket=stats_range.bucket, percentiles=False, fallback_allowed=False
        )
        assert result is not None
        sample = _percentile_sample(repository, scope=scope, since=since)
    report = _build_report(result, stats_range=stats_range, since=since, now=now, method=method, sample=sample)
    seconds = time.perf_counter() - started
    logger.debug("Stats %s for %s computed in %.3fs (%s percentiles)", range_key, scope, seconds, method)
    return dataclasses.replace(report, seconds=seconds)


def _aggregate(
    repository: InteractionRepository,
    *,
    scope: Scope,
    since: datetime | None,
    bucket: Bucket,
    percentiles: bool,
    fallback_allowed: bool,
) -> dict[str, Any] | None:
    pipeline = stats_pipeline(scope=scope, since=since, bucket=bucket, with_percentiles=percentiles)
    with store_errors("stats"):
        try:
            documents = list(repository.collection.aggregate(pipeline))
        except OperationFailure as exc:
            if not (percentiles and fallback_allowed and _is_unsupported_operator(exc)):
                raise
            logger.warning("The store has no $percentile (code %s); percentiles come from a sample", exc.code)
            _no_percentile_repositories.add(repository)
            return None
    return documents[0] if documents else {"models": [], "series": [], "overall": []}


def _is_unsupported_operator(exc: OperationFailure) -> bool:
    return exc.code in UNSUPPORTED_OPERATOR_CODES or "$percentile" in str(exc)


def _percentile_sample(
    repository: InteractionRepository, *, scope: Scope, since: datetime | None
) -> list[dict[str, Any]]:
    """The newest interactions in range (bounded), with only the fields percentiles need."""
    query = scope_match(scope, since=since)
    projection = {"_id": 0, "model": 1, "task": 1, "created_at": 1, "status": 1, "cached": 1, "durations_ms": 1}
    with store_errors("stats sample"):
        cursor = (
            repository.collection.find(query, projection)
            .sort([("created_at", DESCENDING)])
            .limit(PERCENTILE_SAMPLE_LIMIT)
        )
        return list(cursor)


# --- Turning documents into a report ------------------------------------------------------------


def _figures(group: Mapping[str, Any], percentiles: Mapping[str, list[float | None]] | None = None) -> Figures:
    latency = percentiles["latency"] if percentiles else _pair(group.get("latency_p"))
    first_token = percentiles["first_token"] if percentiles else _pair(group.get("first_token_p"))
    return Figures(
        interactions=int(group.get("interactions") or 0),
        errors=int(group.get("errors") or 0),
        cancelled=int(group.get("cancelled") or 0),
        timed=int(group.get("timed") or 0),
        output_tokens=int(group.get("output_tokens") or 0),
        generate_ms=float(group.get("generate_ms") or 0.0),
        p50_ms=latency[0],
        p95_ms=latency[1],
        first_token_count=int(group.get("first_token_count") or 0),
        first_token_p50_ms=first_token[0],
        first_token_p95_ms=first_token[1],
    )


def _pair(values: object) -> list[float | None]:
    if isinstance(values, list) and len(values) == len(PERCENTILES):
        return [float(v) if isinstance(v, int | float) else None for v in values]
    return [None] * len(PERCENTILES)


class _SampleIndex:
    """Latency and first-token values of the sampled interactions, grouped like the facets."""

    def __init__(self, sample: Iterable[Mapping[str, Any]], bucket: Bucket) -> None:
        self.size = 0
        self.latency: dict[object, list[float]] = defaultdict(list)
        self.first_token: dict[object, list[float]] = defaultdict(list)
        for doc in sample:
            self.size += 1
            durations = doc.get("durations_ms") or {}
            keys: tuple[object, ...] = (
                ("model", doc.get("model") or "", doc.get("task") or ""),
                ("bucket", doc["created_at"].astimezone(UTC).strftime(BUCKET_FORMATS[bucket])),
                ("overall",),
            )
            latency = durations.get("generate_ms")
            if (
                doc.get("status") == STATUS_OK
                and doc.get("cached") is not True
                and isinstance(latency, int | float)
                and latency > 0
            ):
                for key in keys:
                    self.latency[key].append(float(latency))
            first_token = durations.get("first_token_ms")
            if isinstance(first_token, int | float) and first_token > 0:
                for key in keys:
                    self.first_token[key].append(float(first_token))

    def percentiles(self, key: object) -> dict[str, list[float | None]]:
        return {
            "latency": [percentile(self.latency.get(key, []), p) for p in PERCENTILES],
            "first_token": [percentile(self.first_token.get(key, []), p) for p in PERCENTILES],
        }


def _build_report(
    result: Mapping[str, Any],
    *,
    stats_range: StatsRange,
    since: datetime | None,
    now: datetime,
    method: Literal["server", "sample"],
    sample: list[dict[str, Any]] | None,
) -> StatsReport:
    index = _SampleIndex(sample, stats_range.bucket) if sample is not None else None

    def figures(group: Mapping[str, Any], key: object) -> Figures:
        return _figures(group, index.percentiles(key) if index is not None else None)

    models = [
        ModelStats(
            model=str(group["_id"].get("model", "")),
            task=str(group["_id"].get("task", "")),
            figures=figures(group, ("model", group["_id"].get("model", ""), group["_id"].get("task", ""))),
        )
        for group in result.get("models", [])
    ]
    by_bucket = {
        group["_id"]: figures(group, ("bucket", group["_id"]))
        for group in result.get("series", [])
        if isinstance(group.get("_id"), str)  # documents without a created_at date have no bucket
    }
    overall_groups = result.get("overall") or [{}]
    overall = figures(overall_groups[0], ("overall",))
    series = _series(by_bucket, stats_range=stats_range, since=since, now=now)
    return StatsReport(
        range=stats_range,
        since=since,
        until=now,
        models=models,
        series=series,
        overall=overall,
        percentile_method=method,
        sample_size=index.size if index is not None else None,
    )


def _series(
    by_bucket: Mapping[str, Figures], *, stats_range: StatsRange, since: datetime | None, now: datetime
) -> list[SeriesPoint]:
    """One point per bucket from ``since`` (or the first bucket with data) to now, gaps filled with zeros."""
    bucket = stats_range.bucket
    fmt = BUCKET_FORMATS[bucket]
    starts = sorted(_parse_bucket(key, fmt) for key in by_bucket)
    if since is None and not starts:
        return []
    first = since if since is not None else starts[0]
    last = bucket_floor(now, bucket)
    step = BUCKET_STEPS[bucket]
    count = int((last - first) / step) + 1
    filled = since is not None or count <= MAX_FILLED_BUCKETS
    points = [first + step * i for i in range(count)] if filled else starts
    return [
        SeriesPoint(
            start=start,
            label=bucket_label(start, bucket),
            figures=by_bucket.get(start.strftime(fmt), Figures()),
            tick=bucket_tick(start, bucket),
        )
        for start in points
    ]


def _parse_bucket(key: str, fmt: str) -> datetime:
    return datetime.strptime(key, fmt).replace(tzinfo=UTC)


def timed_stats(*, scope: Scope, range_key: str, repository: InteractionRepository) -> float:
    """Seconds to compute the stats page's figures (for ``bench/``)."""
    started = time.perf_counter()
    compute_stats(scope=scope, range_key=range_key, repository=repository)
    return time.perf_counter() - started
