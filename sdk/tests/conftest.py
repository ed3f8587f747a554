from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from hokusai.breaker import CircuitBreaker
from hokusai.metrics import SdkMetrics


@pytest.fixture
def metrics() -> SdkMetrics:
    """Metrics in a private registry so tests do not see each other's samples."""
    return SdkMetrics(CollectorRegistry())


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker("test", failure_threshold=3, reset_timeout=60)


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
