"""Prometheus metrics of a node, served at ``/metrics``.

::

    idnode_http_requests_total{method, route, status}      every request, by route template
    idnode_http_request_duration_seconds{route}            latency histogram
    idnode_resolutions_total{outcome}                      resolutions, by how they ended:
        authoritative   answered from this node's store
        not_found       this node holds the prefix and the handle does not exist
        referral        301: the prefix lives elsewhere
        cache_hit       from the recursive cache
        negative_hit    a cached "not found"
        cache_miss      fetched from the responsible node (found or not)
        stale           served past its TTL because the responsible node is down
        upstream_error  502/504: the responsible node failed, nothing to serve
    idnode_cache_hit_ratio                                 (cache_hit + negative_hit) / all
                                                           cached-path resolutions
    idnode_registrations_total                             handles created
    idnode_enterprises                                     enterprises approved here
    idnode_store_errors_total                              Redis failures answered 503
    idnode_upstream_errors_total{kind}                     unavailable | timeout

Labels are bounded: route templates (never a handle), methods, status codes, fixed
outcome names. With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes),
``/metrics`` aggregates every process's values through prometheus-client's multiprocess
collector, and the hit ratio is worked out from the summed counters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import (
    HandleNotFound,
    IdnodeError,
    NotResponsible,
    StoreUnavailable,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# No *_created series: they double the exposition and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]
_MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # set by node.workers for several workers
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Outcome(StrEnum):
    AUTHORITATIVE = "authoritative"
    NOT_FOUND = "not_found"
    REFERRAL = "referral"
    CACHE_HIT = "cache_hit"
    NEGATIVE_HIT = "negative_hit"
    CACHE_MISS = "cache_miss"
    STALE = "stale"
    UPSTREAM_ERROR = "upstream_error"


CACHED = (Outcome.CACHE_HIT, Outcome.NEGATIVE_HIT, Outcome.CACHE_MISS, Outcome.STALE)
# Resolutions that got an answer (found or not): what the daily KPIs count.
ANSWERED = frozenset(Outcome) - {Outcome.REFERRAL, Outcome.UPSTREAM_ERROR}


def error_outcome(error: IdnodeError) -> Outcome | None:
    """How a resolution that ended in ``error`` counts (None: it does not count, e.g.
    an invalid handle or Redis down)."""
    if isinstance(error, NotResponsible):
        return Outcome.REFERRAL
    if isinstance(error, HandleNotFound):
        return Outcome.NOT_FOUND
    if isinstance(error, UpstreamUnavailable | UpstreamTimeout):
        return Outcome.UPSTREAM_ERROR
    return None


class NodeMetrics:
    """One node's metrics, in their own registry (several apps may share a process).

    >>> metrics = NodeMetrics()
    >>> metrics.resolved(Outcome.CACHE_HIT)
    >>> b"idnode_resolutions_total" in metrics.exposition()
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "idnode_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "idnode_http_request_duration_seconds",
            "Time to answer, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.resolutions = Counter(
            "idnode_resolutions", "Resolutions by outcome", ["outcome"], registry=registry
        )
        self._outcomes = {o: self.resolutions.labels(outcome=o.value) for o in Outcome}
        self.registrations = Counter("idnode_registrations", "Handles created", registry=registry)
        self.enterprises = Gauge(
            "idnode_enterprises",
            "Enterprises approved at this node",
            registry=registry,
            multiprocess_mode="max",
        )
        self.store_errors = Counter(
            "idnode_store_errors", "Redis failures answered with 503", registry=registry
        )
        self.upstream_errors = Counter(
            "idnode_upstream_errors",
            "Failed calls to other nodes",
            ["kind"],
            registry=registry,
        )
        registry.register(_HitRatio(self))

    def failed(self, error: IdnodeError) -> None:
        """Count an error answered with a 5xx by what failed."""
        if isinstance(error, StoreUnavailable):
            self.store_errors.inc()
        elif isinstance(error, UpstreamTimeout):
            self.upstream_errors.labels(kind="timeout").inc()
        elif isinstance(error, UpstreamUnavailable):
            self.upstream_errors.labels(kind="unavailable").inc()

    def resolved(self, outcome: Outcome) -> None:
        self._outcomes[outcome].inc()

    def count(self, outcome: Outcome) -> float:
        """Resolutions with ``outcome`` in this process."""
        return float(self._outcomes[outcome]._value.get())

    def hit_ratio(self) -> float | None:
        """Cache hits (found or negative) over all cached-path resolutions of the node,
        every worker's with several; None if none."""
        if _MULTIPROCESS_DIR in os.environ:
            return hit_ratio(_resolution_counts(_worker_families()))
        return hit_ratio({o: self.count(o) for o in CACHED})

    def exposition(self) -> bytes:
        if _MULTIPROCESS_DIR in os.environ:
            combined = CollectorRegistry()
            combined.register(_AllWorkers())
            return generate_latest(combined)
        return generate_latest(self.registry)


def hit_ratio(counts: Mapping[Outcome, float]) -> float | None:
    """(cache hits + negative hits) / cached-path resolutions, from resolution counts by
    outcome; None when there were none.

    >>> hit_ratio({Outcome.CACHE_HIT: 3, Outcome.CACHE_MISS: 1, Outcome.AUTHORITATIVE: 9})
    0.75
    >>> hit_ratio({Outcome.AUTHORITATIVE: 9}) is None
    True
    """
    total = sum(counts.get(o, 0.0) for o in CACHED)
    if not total:
        return None
    return (counts.get(Outcome.CACHE_HIT, 0.0) + counts.get(Outcome.NEGATIVE_HIT, 0.0)) / total


def _ratio_family(ratio: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "idnode_cache_hit_ratio",
        "Share of cached-path resolutions answered from the cache",
        value=ratio or 0.0,
    )


class _HitRatio(Collector):
    """The cache hit ratio, computed from the resolution counters at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield _ratio_family(self.metrics.hit_ratio())


class _AllWorkers(Collector):
    """Every worker's metrics (prometheus-client's multiprocess files, summed), and the
    hit ratio worked out from their summed resolution counters: a computed gauge has no
    file of its own."""

    def collect(self) -> Iterator[Metric]:
        families = _worker_families()
        yield from families
        yield _ratio_family(hit_ratio(_resolution_counts(families)))


def _worker_families() -> list[Metric]:
    files = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
    return list(files.collect())  # type: ignore[no-untyped-call]


def _resolution_counts(families: Iterable[Metric]) -> dict[Outcome, float]:
    names = {o.value: o for o in Outcome}
    counts: dict[Outcome, float] = {}
    for family in families:
        if family.name != "idnode_resolutions":
            continue
        for sample in family.samples:
            outcome = names.get(sample.labels.get("outcome", ""))
            if sample.name == "idnode_resolutions_total" and outcome is not None:
                counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return counts


class RequestMetrics:
    """ASGI middleware: counts every request by route template and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # The app's metrics, the node's too once it is built (its store may load
            # for minutes before: the 503s answered meanwhile are counted).
            metrics: NodeMetrics | None = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.requests.labels(scope["method"], template, str(status)).inc()
                metrics.latency.labels(template).observe(time.perf_counter() - started)
