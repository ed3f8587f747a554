"""ModelRegistry against a real MLflow server, with a misbehaving proxy in between."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hokusai.breaker import CircuitBreaker
from hokusai.core import IDEMPOTENCY_TAG, REQUESTED_AT_TAG, ModelRegistry
from hokusai.errors import MlflowRequestError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy
from hokusai.tracking import ExperimentManager

from .mlflow_server import MlflowServer
from .proxy import FlakyProxy
from .registries import FAST, fast_registry

pytestmark = pytest.mark.integration


def registry_via(url: str, metrics: SdkMetrics, outbox: Path, **kw: object) -> ModelRegistry:
    return fast_registry(url, metrics, outbox, reset_timeout=60, **kw)


def versions(server: MlflowServer, name: str) -> list[tuple[str, str]]:
    client = MlflowClient(server.url)
    return sorted(
        (mv.version, mv.tags.get(IDEMPOTENCY_TAG, ""))
        for mv in client.search_model_versions(f"name = '{name}'")
    )


def sample(metrics: SdkMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_register_with_tags_aliases_and_description(
    mlflow_server: MlflowServer, metrics: SdkMetrics, outbox_path: Path, model_name: str
) -> None:
    reg = registry_via(mlflow_server.url, metrics, outbox_path)
    first = reg.register_model(
        model_name,
        "s3://bucket/m/1",
        tags={"team": "ml"},
        aliases=["candidate"],
        description="first",
    )
    assert (first.status, first.version, first.source) == ("registered", "1", "s3://bucket/m/1")

    client = MlflowClient(mlflow_server.url)
    mv1 = client.get_model_version(model_name, "1")
    assert set(mv1.tags) == {"team", IDEMPOTENCY_TAG, REQUESTED_AT_TAG}
    assert mv1.tags[IDEMPOTENCY_TAG] == first.idempotency_key
    assert mv1.description == "first"
    assert client.get_model_version_by_alias(model_name, "candidate").version == "1"
    assert reg.find_version(model_name, first.idempotency_key).version == "1"  # type: ignore[union-attr]


def test_run_without_a_logged_model_is_refused_not_spooled(
    mlflow_server: MlflowServer, metrics: SdkMetrics, outbox_path: Path, model_name: str
) -> None:
    reg = registry_via(mlflow_server.url, metrics, outbox_path)
    manager = ExperimentManager("runs-for-registry", registry=reg)
    with manager.start_run() as run:
        pass
    with pytest.raises(MlflowRequestError, match="no logged model named 'model'"):
        reg.register_model(model_name, run_id=run.run_id)
    assert reg.outbox is not None and reg.outbox.depth() == 0


def test_lost_response_retry_yields_exactly_one_version(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = registry_via(proxy.url, metrics, outbox_path)
    first = reg.register_model(model_name, "s3://bucket/m/0")  # creates the registered model
    proxy.requests.clear()
    proxy.drop_response_for("/model-versions/create", 1)
    receipt = reg.register_model(model_name, "s3://bucket/m/1")
    assert proxy.dropped == 1  # MLflow answered, the answer was lost
    assert receipt.status == "registered"
    assert receipt.deduplicated  # the retry found the committed version by key
    assert versions(mlflow_server, model_name) == [
        ("1", first.idempotency_key),
        ("2", receipt.idempotency_key),
    ]
    # one create (answer lost), then a lookup by key instead of a second create
    assert [p.split("?")[0].rsplit("/", 2)[-2:] for p in proxy.requests] == [
        ["model-versions", "create"],
        ["model-versions", "search"],
    ]


def test_validation_error_is_not_retried_nor_spooled(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = registry_via(proxy.url, metrics, outbox_path)
    reg.register_model(model_name, "s3://bucket/m/0")
    proxy.requests.clear()
    with pytest.raises(MlflowRequestError, match="INVALID_PARAMETER_VALUE") as info:
        reg.register_model(model_name, "/etc/passwd")  # local path without a run: refused
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert len(proxy.requests) == 1
    assert reg.outbox is not None and reg.outbox.depth() == 0


def test_503s_are_retried_then_spooled_and_flushed_once(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = registry_via(proxy.url, metrics, outbox_path)
    proxy.mode = "503"
    receipt = reg.register_model(model_name, "s3://bucket/m/1")
    assert receipt.pending and receipt.reason == "HTTP 503"
    assert len(proxy.requests) == FAST.max_attempts  # our retries, none of MLflow's own
    assert (
        sample(metrics, "hokusai_sdk_retries_total", operation="register_model", cause="HTTP 503")
        == FAST.max_attempts - 1
    )
    assert (
        sample(metrics, "hokusai_sdk_calls_total", operation="register_model", outcome="spooled")
        == 1
    )
    proxy.mode = "pass"
    report = reg.flush()
    assert [r.version for r in report.registered] == ["1"]
    assert versions(mlflow_server, model_name) == [("1", receipt.idempotency_key)]


def test_breaker_opens_fails_fast_and_recovers(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    breaker = CircuitBreaker(proxy.url, failure_threshold=2, reset_timeout=2.0)
    reg = registry_via(
        proxy.url, metrics, outbox_path, breaker=breaker, retry_policy=RetryPolicy(max_attempts=1)
    )
    proxy.mode = "refuse"
    for _ in range(2):
        assert reg.register_model(model_name, "s3://bucket/m/x").pending
    assert breaker.state == "open"
    assert sample(metrics, "hokusai_sdk_circuit_state", tracking_uri=proxy.url) == 2
    seen = len(proxy.requests)
    start = time.monotonic()
    fast = reg.register_model(model_name, "s3://bucket/m/x")
    assert fast.pending and fast.reason == "circuit open"
    assert time.monotonic() - start < 1.0  # no network, no backoff: only the outbox commit
    assert len(proxy.requests) == seen  # not even attempted
    assert not reg.health().healthy

    proxy.mode = "pass"
    time.sleep(breaker.seconds_until_probe() + 0.05)
    ok = reg.register_model(model_name, "s3://bucket/m/y")  # the half-open probe
    assert ok.status == "registered"
    assert breaker.state == "closed"
    assert sample(metrics, "hokusai_sdk_circuit_state", tracking_uri=proxy.url) == 0
    health = reg.health()
    assert health.healthy and health.outbox_depth == 3
    report = reg.flush()
    assert len(report.registered) == 3 and report.still_pending == 0
    keys = [k for _, k in versions(mlflow_server, model_name)]
    assert sorted(keys) == sorted(
        [ok.idempotency_key, *(r.idempotency_key for r in report.registered)]
    )
