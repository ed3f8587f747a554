"""ExperimentManager against a real MLflow server, in both construction forms."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry
from hokusai.errors import MlflowUnavailableError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy
from hokusai.tracking import DEFAULT_EXPERIMENT_NAME, ExperimentManager

from .mlflow_server import MlflowServer, free_port

pytestmark = pytest.mark.integration


def test_both_construction_forms_track_the_same_experiment(
    mlflow_server: MlflowServer, metrics: SdkMetrics, outbox_path: Path
) -> None:
    registry = ModelRegistry(mlflow_server.url, metrics=metrics, outbox_path=outbox_path)
    name = f"exp-{uuid.uuid4().hex[:8]}"
    with pytest.warns(DeprecationWarning, match="registry=registry"):
        old = ExperimentManager(registry, experiment_name=name)  # type: ignore[arg-type]
    new = ExperimentManager(registry=registry, experiment_name=name)
    by_uri = ExperimentManager(name, tracking_uri=mlflow_server.url)
    ids = {old.ensure_experiment(), new.ensure_experiment(), by_uri.ensure_experiment()}
    assert len(ids) == 1  # created once, then resolved to the same id

    with old.start_run(run_name="old-form") as run:
        run.log_params({"lr": 0.1, "depth": 3})
        run.log_metrics({"auc": 0.91}, step=1)
    with new.start_run(run_name="new-form") as run:
        run.log_params({"lr": 0.2})
        run.log_metrics({"auc": 0.93})

    for manager in (old, new, by_uri):
        runs = manager.list_runs()
        assert [r.info.run_name for r in runs] == ["new-form", "old-form"]
        assert {r.info.status for r in runs} == {"FINISHED"}
    newest, oldest = new.list_runs()
    assert oldest.data.params == {"lr": "0.1", "depth": "3"}
    assert oldest.data.metrics == {"auc": 0.91}
    assert newest.data.metrics == {"auc": 0.93}


def test_registry_only_uses_the_default_experiment(
    mlflow_server: MlflowServer, metrics: SdkMetrics, outbox_path: Path
) -> None:
    registry = ModelRegistry(mlflow_server.url, metrics=metrics, outbox_path=outbox_path)
    manager = ExperimentManager(registry=registry)
    exp = manager.client.get_experiment(manager.ensure_experiment())
    assert exp.name == DEFAULT_EXPERIMENT_NAME


def test_unreachable_server_raises_typed_error(metrics: SdkMetrics) -> None:
    manager = ExperimentManager(
        "nowhere",
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01),
        metrics=metrics,
    )
    manager.resilience.breaker = CircuitBreaker("private", failure_threshold=100)
    with pytest.raises(MlflowUnavailableError, match="connection error"):
        manager.list_runs()
