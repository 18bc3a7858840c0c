"""Prometheus metrics for the app: one registry, plain functions to record, one function to expose.

Other modules record through small functions (``observe_request``, ``observe_interaction``,
``observe_generation``, ``observe_model_load``, ``count_store_error``) that never raise, so a
metrics problem can never break a request. This module is a leaf: it imports nothing of the app,
so the repository and the engines can record without a cycle. What is read at scrape time (queue
and outbox depths) and who may scrape live in ``metrics_exposition``.

Names follow Prometheus conventions: a ``django_hf_ml_`` prefix, base units (seconds), ``_total``
on counters (added by ``prometheus_client``), ``_seconds`` on durations. Label values come from a
bounded set (view names, configured models, HTTP methods), never from user input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

logger = logging.getLogger(__name__)

PREFIX = "django_hf_ml"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_VIEW = "unmatched"
# Headers a reverse proxy adds: such a request's REMOTE_ADDR is the proxy, not the client.

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GENERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests served, by Django view name, method and status code.",
    ["view", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to produce the response (for streams: until the response starts), by view and method.",
    ["view", "method"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
INTERACTIONS = Counter(
    f"{PREFIX}_interactions",
    "Interactions recorded (answered, failed or cancelled), by model and status.",
    ["model", "status"],
    registry=REGISTRY,
)
GENERATION_DURATION = Histogram(
    f"{PREFIX}_generation_duration_seconds",
    "Model generation time of successful, uncached answers, by model.",
    ["model"],
    buckets=GENERATION_BUCKETS,
    registry=REGISTRY,
)
GENERATED_TOKENS = Counter(
    f"{PREFIX}_generated_tokens",
    "Output tokens generated (uncached answers), by model.",
    ["model"],
    registry=REGISTRY,
)
FIRST_TOKEN = Histogram(
    f"{PREFIX}_time_to_first_token_seconds",
    "Time from request to the first streamed token, by model.",
    ["model"],
    buckets=FIRST_TOKEN_BUCKETS,
    registry=REGISTRY,
)
MODEL_LOAD_DURATION = Gauge(
    f"{PREFIX}_model_load_duration_seconds",
    "Seconds the most recent load of each model took.",
    ["model"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
MODEL_LOADS = Counter(
    f"{PREFIX}_model_loads",
    "Model loads in this process, by model.",
    ["model"],
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    f"{PREFIX}_store_errors",
    "MongoDB operations that failed, by action (insert, read, page, stats…).",
    ["action"],
    registry=REGISTRY,
)


def _never_raise(record: Callable[..., None]) -> Callable[..., None]:
    """Recording a metric must never break the caller."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            record(*args, **kwargs)
        except Exception:
            logger.exception("Recording metric %s failed", record.__name__)

    wrapper.__name__ = record.__name__
    wrapper.__doc__ = record.__doc__
    return wrapper


# --- Recording ----------------------------------------------------------------------------------


@_never_raise
def observe_request(*, view: str | None, method: str, status: int, seconds: float) -> None:
    view_name = view or UNMATCHED_VIEW
    method_name = method.upper() if method.upper() in KNOWN_METHODS else "OTHER"
    HTTP_REQUESTS.labels(view=view_name, method=method_name, status=str(status)).inc()
    HTTP_REQUEST_DURATION.labels(view=view_name, method=method_name).observe(max(0.0, seconds))


@_never_raise
def observe_generation(
    *, model: str, seconds: float | None, tokens: int, status: str = "ok", first_token_seconds: float | None = None
) -> None:
    """One recorded interaction: counts it, and times it when ``seconds`` is given."""
    INTERACTIONS.labels(model=model, status=status).inc()
    if seconds is not None and seconds > 0:
        GENERATION_DURATION.labels(model=model).observe(seconds)
        GENERATED_TOKENS.labels(model=model).inc(max(0, tokens))
    if first_token_seconds is not None and first_token_seconds > 0:
        FIRST_TOKEN.labels(model=model).observe(first_token_seconds)


@_never_raise
def observe_interaction(interaction: Any) -> None:
    """Record a stored ``Interaction`` (called from ``store_interaction``: every write path)."""
    durations: Mapping[str, Any] = interaction.durations_ms or {}
    raw_generate_ms = durations.get("generate_ms")
    generate_ms = float(raw_generate_ms) if isinstance(raw_generate_ms, int | float) else 0.0
    timed = interaction.status == "ok" and not getattr(interaction, "cached", False) and generate_ms > 0
    first_token_ms = durations.get("first_token_ms")
    observe_generation(
        model=interaction.model,
        seconds=generate_ms / 1000 if timed else None,
        tokens=int(interaction.output_tokens or 0),
        status=interaction.status,
        first_token_seconds=first_token_ms / 1000 if isinstance(first_token_ms, int | float) else None,
    )


@_never_raise
def observe_model_load(*, model: str, seconds: float) -> None:
    MODEL_LOAD_DURATION.labels(model=model).set(seconds)
    MODEL_LOADS.labels(model=model).inc()


@_never_raise
def count_store_error(*, action: str) -> None:
    STORE_ERRORS.labels(action=action).inc()


def multiprocess_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR``: set (to an empty folder) for gunicorn with several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
