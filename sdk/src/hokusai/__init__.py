"""Hokusai ML platform SDK.

* :class:`hokusai.tracking.ExperimentManager` -- experiments, runs, params, metrics;
* :class:`hokusai.core.ModelRegistry` -- model registration that survives MLflow outages
  (retries, circuit breaker, durable outbox, exactly-once replay).
"""

from __future__ import annotations

from hokusai.core import ModelRegistry, Registration
from hokusai.errors import (
    AliasError,
    CircuitOpenError,
    HokusaiError,
    IdempotencyConflictError,
    MlflowRequestError,
    MlflowUnavailableError,
    OutboxError,
)
from hokusai.resilience import RetryPolicy
from hokusai.tracking import ExperimentManager

__all__ = [
    "AliasError",
    "CircuitOpenError",
    "ExperimentManager",
    "HokusaiError",
    "IdempotencyConflictError",
    "MlflowRequestError",
    "MlflowUnavailableError",
    "ModelRegistry",
    "OutboxError",
    "Registration",
    "RetryPolicy",
]

__version__ = "0.3.0"
