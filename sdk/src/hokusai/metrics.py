"""Prometheus metrics of the SDK (``prometheus-client``).

=====================================  =========  ===========================================
metric                                 type       labels
=====================================  =========  ===========================================
``hokusai_sdk_calls_total``            counter    ``operation``, ``outcome``
``hokusai_sdk_call_duration_seconds``  histogram  ``operation``
``hokusai_sdk_retries_total``          counter    ``operation``, ``cause``
``hokusai_sdk_circuit_state``          gauge      ``tracking_uri`` (0 closed, 1 half-open, 2 open)
``hokusai_sdk_outbox_depth``           gauge      ``outbox`` (pending registrations)
``hokusai_sdk_outbox_failed``          gauge      ``outbox`` (rows that need a human/requeue)
``hokusai_sdk_outbox_oldest_pending_`` gauge      ``outbox`` (age of the oldest pending row;
``age_seconds``                                   absent when nothing is pending)
=====================================  =========  ===========================================

The three outbox gauges are read from the SQLite file at scrape time, so they are right even when
another process (``hokusai-outbox flush``, a cron job) changed the file.

``outcome`` is one of ``success``, ``error`` (MLflow refused the request), ``unavailable``
(transient failures exhausted), ``short_circuited`` (breaker open), ``spooled`` (written to the
outbox), ``deduplicated`` (an earlier attempt had already registered the version). Each public
call is counted once, with its final outcome.

By default the metrics live in ``prometheus_client.REGISTRY`` (expose them with
``prometheus_client.start_http_server``); tests and embedders pass their own
``CollectorRegistry``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["SdkMetrics", "default_metrics", "redact_uri"]

_STATE_VALUE = {"closed": 0, "half-open": 1, "open": 2}


def redact_uri(uri: str) -> str:
    """Drop credentials from a URI before it becomes a label or a log line.

    >>> redact_uri("https://bob:secret@mlflow.example:443/path")
    'https://mlflow.example:443/path'
    """
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SdkMetrics:
    """The SDK's metric families registered in one ``CollectorRegistry``.

    >>> from prometheus_client import CollectorRegistry
    >>> reg = CollectorRegistry()
    >>> m = SdkMetrics(reg)
    >>> m.calls.labels(operation="register_model", outcome="success").inc()
    >>> reg.get_sample_value(
    ...     "hokusai_sdk_calls_total", {"operation": "register_model", "outcome": "success"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.registry = reg
        self.calls = Counter(
            "hokusai_sdk_calls",
            "SDK calls to MLflow by operation and outcome",
            ["operation", "outcome"],
            registry=reg,
        )
        self.latency = Histogram(
            "hokusai_sdk_call_duration_seconds",
            "Wall time of SDK calls to MLflow, retries included",
            ["operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=reg,
        )
        self.retries = Counter(
            "hokusai_sdk_retries",
            "Retries after a transient failure, by operation and cause",
            ["operation", "cause"],
            registry=reg,
        )
        self.circuit_state = Gauge(
            "hokusai_sdk_circuit_state",
            "Circuit breaker state per tracking URI: 0 closed, 1 half-open, 2 open",
            ["tracking_uri"],
            registry=reg,
        )

        self._outboxes: dict[str, Callable[[], Any]] = {}
        self._outbox_lock = threading.Lock()
        reg.register(_OutboxCollector(self))

    def watch_outbox(self, path: str, stats: Callable[[], Any]) -> None:
        """Report the outbox at *path*; ``stats()`` returns an ``OutboxStats`` at scrape time."""
        with self._outbox_lock:
            self._outboxes[path] = stats

    def set_circuit_state(self, tracking_uri: str, state: str) -> None:
        self.circuit_state.labels(tracking_uri=redact_uri(tracking_uri)).set(_STATE_VALUE[state])


class _OutboxCollector(Collector):
    def __init__(self, metrics: SdkMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "hokusai_sdk_outbox_depth",
                "Registrations waiting in the local outbox",
                labels=["outbox"],
            ),
            GaugeMetricFamily(
                "hokusai_sdk_outbox_failed",
                "Outbox rows MLflow refused or that used up their strikes (hokusai-outbox requeue)",
                labels=["outbox"],
            ),
            GaugeMetricFamily(
                "hokusai_sdk_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending registration in the outbox",
                labels=["outbox"],
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, failed, age = self._families()
        with self._metrics._outbox_lock:
            outboxes = list(self._metrics._outboxes.items())
        for path, stats_fn in outboxes:
            try:
                stats = stats_fn()
            except Exception:  # noqa: S112 -- a scrape must not fail because one file is unreadable
                continue
            depth.add_metric([path], stats.pending)
            failed.add_metric([path], stats.failed)
            if stats.oldest_pending_age is not None:
                age.add_metric([path], stats.oldest_pending_age)
        yield from (depth, failed, age)


_default: SdkMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> SdkMetrics:
    """The metrics registered in ``prometheus_client.REGISTRY`` (created once per process)."""
    global _default  # prometheus' default registry is process-wide by design
    with _default_lock:
        if _default is None:
            _default = SdkMetrics()
        return _default
