"""Usage statistics: per model and task, over a time range, with a per-hour/per-day series.

One MongoDB aggregation does the reading: ``$match`` on the scope's owner and ``created_at`` (an
index range, so only the chosen range is read, however long the history), ``$group`` by model,
task, status and time bucket, ``$sort``. The groups are then summed here into the per-model rows,
the series and the overall figures; latency percentiles are exact nearest-rank values over the
generation times each group pushed.

Why not ``$percentile``/``$facet``: measured on SecantusDB (which has both), a ``$facet`` with
``$percentile`` and the ``$cond`` projections it needs was about 4x slower than this single
``$group`` of plain field paths, and ``$percentile`` needs MongoDB 7+. This pipeline runs as is
on any MongoDB-compatible server.

Finished buckets (every hour/day before the current one) are kept per process for
``CACHE_SECONDS``; only the current bucket is read on every request, so switching ranges or
reloading costs about one bucket's worth of documents.

Definitions (shown on the page too):

* latency = ``durations_ms.generate_ms`` of successful, uncached interactions (the model's own time);
* tokens per second = output tokens / generation seconds, summed over those same interactions;
* time to first token = ``durations_ms.first_token_ms`` where it was recorded (streamed answers);
* error / cancel rate = interactions with status ``error`` / ``cancelled`` over all interactions.

Time buckets and ranges are in UTC: "24h" is the last 24 clock hours (current hour included),
"7d"/"30d" the last 7/30 calendar days (today included), "all" everything.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from app.domain.ids import utc_now
from app.domain.interaction import STATUS_CANCELLED, STATUS_ERROR, STATUS_OK, Scope
from app.domain.stats import (
    BUCKET_FORMATS,
    BUCKET_STEPS,
    DEFAULT_RANGE,
    Bucket,
    Figures,
    ModelStats,
    SeriesPoint,
    StatsRange,
    StatsReport,
    bucket_floor,
    bucket_label,
    bucket_tick,
    get_range,
    percentile,
)
from app.services.mongo_repo import InteractionRepository, get_repository, store_errors

logger = logging.getLogger(__name__)

LATENCY_FIELD = "durations_ms.generate_ms"
FIRST_TOKEN_FIELD = "durations_ms.first_token_ms"
PERCENTILES = (0.5, 0.95)
# Finished time buckets are re-read at most this often (the current bucket is always read fresh):
# deleting or importing older interactions shows on the page within this many seconds.
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
# ...and hold at most this many durations in all (8 bytes each): the oldest entries make room.
CACHE_MAX_VALUES = 2_000_000
# "all" fills days without interactions only while the series stays this short.
MAX_FILLED_BUCKETS = 1_100

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


def stats_pipeline(
    *, scope: Scope, since: datetime | None, bucket: Bucket, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The aggregation behind the stats page (public so the benchmark and tests can run it).

    One ``$group`` per (model, task, status, cached, time bucket) — plain field paths and one
    ``$dateToString``, which every MongoDB-compatible server evaluates cheaply — counting the
    interactions and pushing each one's generation time, output tokens and first-token time as a
    compact triple, so percentiles can be computed exactly over any union of groups.
    """
    match = scope_match(scope, since=since)
    if until is not None:
        match["created_at"] = {**match.get("created_at", {}), "$lt": until}
    return [
        {"$match": match},
        {
            "$group": {
                "_id": {
                    "model": "$model",
                    "task": "$task",
                    "status": "$status",
                    "cached": "$cached",
                    "bucket": {"$dateToString": {"format": BUCKET_FORMATS[bucket], "date": "$created_at"}},
                },
                "interactions": {"$sum": 1},
                "values": {"$push": {"g": f"${LATENCY_FIELD}", "o": "$output_tokens", "f": f"${FIRST_TOKEN_FIELD}"}},
            }
        },
        {"$sort": {"_id.bucket": 1, "_id.model": 1, "_id.task": 1, "_id.status": 1}},
    ]


def compute_stats(
    *,
    scope: Scope,
    range_key: str = DEFAULT_RANGE,
    now: datetime | None = None,
    repository: InteractionRepository | None = None,
    cache_seconds: float = CACHE_SECONDS,
) -> StatsReport:
    """Figures for ``scope`` over the range ``range_key``; raises ``StoreUnavailable`` when the store is down.

    The buckets before the current one are aggregated once and kept for ``cache_seconds`` (new
    interactions land in the current bucket, which is always read fresh); ``cache_seconds=0``
    reads everything fresh.
    """
    started = time.perf_counter()
    stats_range = get_range(range_key)
    now = now or utc_now()
    since = stats_range.since(now)
    bucket = stats_range.bucket
    repository = repository or get_repository()
    current_start = bucket_floor(now, bucket)
    past = _past_pieces(repository, scope=scope, since=since, until=current_start, bucket=bucket, ttl=cache_seconds)
    current = _read_pieces(repository, scope=scope, since=current_start, until=None, bucket=bucket)
    models: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    buckets: dict[str, _Tally] = defaultdict(_Tally)
    overall = _Tally()
    for (model, task, bucket_key), tally in chain(past.items(), current.items()):  # cached tallies stay as they are
        models[(model, task)].merge(tally)
        overall.merge(tally)
        if bucket_key is not None:  # documents without a created_at date have no bucket
            buckets[bucket_key].merge(tally)
    ordered = sorted(models.items(), key=lambda item: (-item[1].interactions, item[0]))
    seconds = time.perf_counter() - started
    logger.debug("Stats %s for %s computed in %.3fs", range_key, scope, seconds)
    return StatsReport(
        range=stats_range,
        since=since,
        until=now,
        models=[ModelStats(model=model, task=task, figures=tally.figures()) for (model, task), tally in ordered],
        series=_series(
            {key: tally.figures() for key, tally in buckets.items()}, stats_range=stats_range, since=since, now=now
        ),
        overall=overall.figures(),
        seconds=seconds,
    )


PieceKey = tuple[str, str, str | None]  # model, task, bucket


def _read_pieces(
    repository: InteractionRepository, *, scope: Scope, since: datetime | None, until: datetime | None, bucket: Bucket
) -> dict[PieceKey, _Tally]:
    """Run the aggregation and fold its groups into one tally per (model, task, bucket)."""
    pieces: dict[PieceKey, _Tally] = {}
    pipeline = stats_pipeline(scope=scope, since=since, until=until, bucket=bucket)
    with store_errors("stats"):
        for group in repository.collection.aggregate(pipeline):
            key = group.get("_id") or {}
            bucket_key = key.get("bucket") if isinstance(key.get("bucket"), str) else None
            piece = pieces.setdefault((str(key.get("model") or ""), str(key.get("task") or ""), bucket_key), _Tally())
            piece.add(
                status=key.get("status"),
                cached=key.get("cached") is True,
                count=int(group.get("interactions") or 0),
                values=group.get("values") or [],
            )
    return pieces


# Finished buckets, per (collection, scope, range start, current bucket start): (stored at, pieces).
_past_cache: OrderedDict[tuple[Any, ...], tuple[float, dict[PieceKey, _Tally]]] = OrderedDict()
_past_cache_values = 0  # durations held by the cached tallies
_past_cache_lock = threading.Lock()


def _past_pieces(
    repository: InteractionRepository,
    *,
    scope: Scope,
    since: datetime | None,
    until: datetime,
    bucket: Bucket,
    ttl: float,
) -> dict[PieceKey, _Tally]:
    if since is not None and since >= until:
        return {}
    key = (id(repository), repository.collection.full_name, repr(sorted(scope.query().items())), bucket, since, until)
    if ttl > 0:
        with _past_cache_lock:
            hit = _past_cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < ttl:
                _past_cache.move_to_end(key)
                return hit[1]
    pieces = _read_pieces(repository, scope=scope, since=since, until=until, bucket=bucket)
    if ttl > 0:
        _remember(key, pieces)
    return pieces


def _size(pieces: dict[PieceKey, _Tally]) -> int:
    return sum(len(tally.latencies) + len(tally.first_tokens) for tally in pieces.values())


def _remember(key: tuple[Any, ...], pieces: dict[PieceKey, _Tally]) -> None:
    global _past_cache_values
    size = _size(pieces)
    if size > CACHE_MAX_VALUES:
        return
    with _past_cache_lock:
        previous = _past_cache.pop(key, None)
        if previous is not None:
            _past_cache_values -= _size(previous[1])
        _past_cache[key] = (time.monotonic(), pieces)
        _past_cache_values += size
        while len(_past_cache) > CACHE_ENTRIES or _past_cache_values > CACHE_MAX_VALUES:
            _, (_, evicted) = _past_cache.popitem(last=False)
            _past_cache_values -= _size(evicted)


def clear_stats_cache() -> None:
    global _past_cache_values
    with _past_cache_lock:
        _past_cache.clear()
        _past_cache_values = 0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


@dataclass
class _Tally:
    """Running totals of some groups; percentiles are exact (nearest rank) over the pushed values."""

    interactions: int = 0
    errors: int = 0
    cancelled: int = 0
    output_tokens: int = 0
    generate_ms: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    first_tokens: array[float] = field(default_factory=lambda: array("d"))

    def add(self, *, status: object, cached: bool, count: int, values: Iterable[Mapping[str, Any]]) -> None:
        self.interactions += count
        self.errors += count if status == STATUS_ERROR else 0
        self.cancelled += count if status == STATUS_CANCELLED else 0
        timed = status == STATUS_OK and not cached
        for value in values:
            first_token = _number(value.get("f"))
            if first_token is not None:
                self.first_tokens.append(first_token)
            latency = _number(value.get("g")) if timed else None
            if latency is not None:
                self.latencies.append(latency)
                self.generate_ms += latency
                self.output_tokens += int(_number(value.get("o")) or 0)

    def merge(self, other: _Tally) -> None:
        self.interactions += other.interactions
        self.errors += other.errors
        self.cancelled += other.cancelled
        self.output_tokens += other.output_tokens
        self.generate_ms += other.generate_ms
        self.latencies.extend(other.latencies)
        self.first_tokens.extend(other.first_tokens)

    def figures(self) -> Figures:
        return Figures(
            interactions=self.interactions,
            errors=self.errors,
            cancelled=self.cancelled,
            timed=len(self.latencies),
            output_tokens=self.output_tokens,
            generate_ms=self.generate_ms,
            p50_ms=percentile(self.latencies, PERCENTILES[0]),
            p95_ms=percentile(self.latencies, PERCENTILES[1]),
            first_token_count=len(self.first_tokens),
            first_token_p50_ms=percentile(self.first_tokens, PERCENTILES[0]),
            first_token_p95_ms=percentile(self.first_tokens, PERCENTILES[1]),
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
