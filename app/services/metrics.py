"""Prometheus metrics for the app: one registry, plain functions to record, one function to expose.

Other modules record through small functions (``observe_request``, ``observe_interaction``,
``observe_generation``, ``observe_model_load``, ``count_store_error``, ``set_queue_depth``) that
never raise, so a metrics problem can never break a request. Queue and outbox depths are read when
Prometheus scrapes, from ``app.services.nlp_service.queue_depths()`` and
``app.services.outbox.outbox_depth()`` (imported lazily).

Names follow Prometheus conventions: a ``django_hf_ml_`` prefix, base units (seconds), ``_total``
on counters (added by ``prometheus_client``), ``_seconds`` on durations. Label values come from a
bounded set (view names, configured models, HTTP methods), never from user input.

``/metrics`` is opt-in (``METRICS_ENABLED=1``) and guarded by ``scrape_refusal``: with
``METRICS_TOKEN`` set, a matching ``Authorization: Bearer`` header is required; without one, only
loopback and private-network clients that did not come through a proxy may scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.errors import METRICS_LOCAL_ONLY, METRICS_TOKEN_REQUIRED

logger = logging.getLogger(__name__)

PREFIX = "django_hf_ml"
CONTENT_TYPE = CONTENT_TYPE_LATEST
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_VIEW = "unmatched"
# Headers a reverse proxy adds: such a request's REMOTE_ADDR is the proxy, not the client.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

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

_queue_depths: dict[str, int] = {}
_queue_lock = threading.Lock()


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


@_never_raise
def set_queue_depth(*, model: str, depth: int) -> None:
    """For code that pushes its queue depth (the scrape also pulls ``nlp_service.queue_depths()``)."""
    with _queue_lock:
        _queue_depths[model] = max(0, depth)


# --- Values read at scrape time -------------------------------------------------------------------


def queue_depths() -> dict[str, int]:
    """Requests waiting per model: pushed values, overridden by the inference workers' own report."""
    from app.services.nlp_service import queue_depths as worker_queue_depths

    with _queue_lock:
        depths = dict(_queue_depths)
    depths.update(worker_queue_depths())
    return depths


def outbox_pending() -> int:
    from app.services.outbox import outbox_depth

    return outbox_depth()


class _DepthCollector(Collector):
    """Queue and outbox depths, read when scraped (a failing reader is logged and skipped)."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Generation requests waiting for a model worker, by model.", labels=["model"]
        )
        try:
            for model, depth in sorted(queue_depths().items()):
                queue.add_metric([model], depth)
        except Exception:
            logger.exception("Reading the inference queue depths failed")
        yield queue
        try:
            pending = outbox_pending()
        except Exception:
            logger.exception("Reading the outbox depth failed")
            pending = None
        if pending is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_outbox_pending",
                "Interactions waiting in the local outbox to be written to MongoDB.",
                pending,
            )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


REGISTRY.register(_DepthCollector())


def multiprocess_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR``: set (to an empty folder) for gunicorn with several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition() -> bytes:
    """Every metric in the Prometheus text format.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the counters and histograms of every worker process are
    summed from their files there (prometheus_client's multiprocess mode), so any worker that
    answers the scrape reports the whole server; the depths are read by the answering worker.
    """
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_DepthCollector())
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# --- Who may scrape -----------------------------------------------------------------------------


def scrape_refusal(*, token: str, authorization: str, remote_addr: str, headers: Mapping[str, str]) -> str | None:
    """None when this request may read ``/metrics``, else the message to refuse it with."""
    if token:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
        return METRICS_TOKEN_REQUIRED
    if any(name in headers for name in PROXY_HEADERS):
        return METRICS_LOCAL_ONLY
    return None if is_internal_address(remote_addr) else METRICS_LOCAL_ONLY


INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_internal_address(address: str) -> bool:
    """Loopback, private (RFC 1918, fc00::/7) or link-local; IPv4-mapped IPv6 counts as its IPv4."""
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in INTERNAL_NETWORKS)
