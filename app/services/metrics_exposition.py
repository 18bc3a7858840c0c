"""What ``/metrics`` serves: the recorded metrics plus values read at scrape time, and who may scrape.

Queue and outbox depths are pulled from the model workers and the local outbox when Prometheus
scrapes (nothing pushes them). ``/metrics`` is opt-in (``METRICS_ENABLED=1``) and guarded by
``scrape_refusal``: with ``METRICS_TOKEN`` set, a matching ``Authorization: Bearer`` header is
required; without one, only loopback and private-network clients that did not come through a
proxy may scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.errors import METRICS_LOCAL_ONLY, METRICS_TOKEN_REQUIRED
from app.services.metrics import PREFIX, REGISTRY, multiprocess_dir
from app.services.nlp_service import queue_depths
from app.services.outbox import outbox_depth

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


# --- Values read at scrape time -------------------------------------------------------------------


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
            pending = outbox_depth()
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
