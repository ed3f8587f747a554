"""Prometheus metrics of the SDK (``prometheus-client``).

=====================================  =========  ===========================================
metric                                 type       labels
=====================================  =========  ===========================================
``hokusai_sdk_calls_total``            counter    ``operation``, ``outcome``
``hokusai_sdk_call_duration_seconds``  histogram  ``operation``
``hokusai_sdk_retries_total``          counter    ``operation``, ``cause``
``hokusai_sdk_circuit_state``          gauge      ``tracking_uri`` (0 closed, 1 half-open, 2 open)
``hokusai_sdk_outbox_depth``           gauge      ``outbox`` (pending registrations)
=====================================  =========  ===========================================

``outcome`` is one of ``success``, ``error`` (MLflow refused the request), ``unavailable``
(transient failures exhausted), ``short_circuited`` (breaker open), ``spooled`` (written to the
outbox), ``deduplicated`` (an earlier attempt had already registered the version).

By default the metrics live in ``prometheus_client.REGISTRY`` (expose them with
``prometheus_client.start_http_server``); tests and embedders pass their own
``CollectorRegistry``.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

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
        self.outbox_depth = Gauge(
            "hokusai_sdk_outbox_depth",
            "Registrations waiting in the local outbox",
            ["outbox"],
            registry=reg,
        )

    def set_circuit_state(self, tracking_uri: str, state: str) -> None:
        self.circuit_state.labels(tracking_uri=redact_uri(tracking_uri)).set(_STATE_VALUE[state])


_default: SdkMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> SdkMetrics:
    """The metrics registered in ``prometheus_client.REGISTRY`` (created once per process)."""
    global _default  # prometheus' default registry is process-wide by design
    with _default_lock:
        if _default is None:
            _default = SdkMetrics()
        return _default
