"""Registries for the integration tests: fast retries, a breaker that stays closed, no drain."""

from __future__ import annotations

from pathlib import Path

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy

FAST = RetryPolicy(
    max_attempts=3, initial_backoff=0.02, max_backoff=0.05, deadline=5, attempt_timeout=5
)


def fast_registry(
    url: str, metrics: SdkMetrics, outbox: Path, *, reset_timeout: float, **kw: object
) -> ModelRegistry:
    """A registry whose breaker needs 50 failures to open and probes after ``reset_timeout``."""
    kw.setdefault("breaker", CircuitBreaker(url, failure_threshold=50, reset_timeout=reset_timeout))
    kw.setdefault("retry_policy", FAST)
    kw.setdefault("auto_drain", False)
    return ModelRegistry(url, metrics=metrics, outbox_path=outbox, **kw)  # type: ignore[arg-type]
