"""Issue-15 guarantees against the real MLflow server (SQLite backend) and the loopback proxy.

MLflow 3 model round trip, aliases that never go backwards, a 401 during a flush, one key for
two models, a true deadline against a slow server, TLS errors and a user's
MLFLOW_HTTP_REQUEST_MAX_RETRIES.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hokusai.core import ModelRegistry
from hokusai.errors import MlflowRequestError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy

from .mlflow_server import MlflowServer
from .proxy import FlakyProxy
from .registries import FAST, fast_registry

pytestmark = pytest.mark.integration


def make(url: str, metrics: SdkMetrics, outbox: Path, **kw: object) -> ModelRegistry:
    return fast_registry(url, metrics, outbox, reset_timeout=0.1, **kw)


# importing mlflow.pyfunc builds a schema from a pydantic model with an Any field and warns
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")
def test_mlflow3_logged_model_round_trip(
    mlflow_server: MlflowServer,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    fitted = LinearRegression().fit(x, 2 * x[:, 0] + 1)
    mlflow.set_experiment("hokusai-roundtrip")
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(fitted, name="model")  # MLflow 3: a logged model
    reg = make(mlflow_server.url, metrics, outbox_path)
    receipt = reg.register_model(model_name, run_id=run.info.run_id, aliases=["candidate"])
    assert receipt.status == "registered"
    assert receipt.run_id == run.info.run_id
    assert receipt.model_id == logged.model_id
    assert receipt.source == f"models:/{logged.model_id}"
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{receipt.version}")
    assert loaded.predict(np.array([[10.0]]))[0] == pytest.approx(21.0)
    by_alias = mlflow.pyfunc.load_model(f"models:/{model_name}@candidate")
    assert by_alias.predict(np.array([[0.0]]))[0] == pytest.approx(1.0)
    # a models:/ URI is accepted as the source too
    again = reg.register_model(model_name, f"models:/{logged.model_id}")
    assert (again.model_id, int(again.version or 0)) == (logged.model_id, 2)


def test_a_replayed_old_registration_does_not_take_the_alias_back(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = make(proxy.url, metrics, outbox_path, retry_policy=RetryPolicy(max_attempts=1))
    reg.register_model(model_name, "s3://bucket/v0")
    proxy.mode = "refuse"
    old = reg.register_model(model_name, "s3://bucket/old", aliases=["champion"])
    assert old.pending
    proxy.mode = "pass"
    new = reg.register_model(model_name, "s3://bucket/new", aliases=["champion"])
    (replayed,) = reg.flush().registered
    client = MlflowClient(mlflow_server.url)
    assert int(replayed.version or 0) > int(new.version or 0)  # replay got the higher number...
    champion = client.get_model_version_by_alias(model_name, "champion")
    assert champion.version == new.version  # ...but the newer request keeps the alias


def test_a_401_during_flush_keeps_every_row_pending(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = make(proxy.url, metrics, outbox_path, retry_policy=RetryPolicy(max_attempts=1))
    proxy.mode = "refuse"
    for i in range(3):
        assert reg.register_model(model_name, f"s3://bucket/{i}").pending
    proxy.mode = "401"  # e.g. a rotated password during a cron flush
    report = reg.flush()
    assert report.stopped_by is not None and "authentication" in report.stopped_by
    assert reg.outbox is not None
    assert reg.outbox.counts() == {"pending": 3, "done": 0, "failed": 0}
    proxy.mode = "pass"
    assert len(reg.flush().registered) == 3


def test_one_pipeline_key_for_two_models_registers_both(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = make(proxy.url, metrics, outbox_path, retry_policy=RetryPolicy(max_attempts=1))
    proxy.mode = "refuse"
    a = reg.register_model(f"{model_name}-a", "s3://bucket/a", idempotency_key="pipeline-9")
    b = reg.register_model(f"{model_name}-b", "s3://bucket/b", idempotency_key="pipeline-9")
    assert a.pending and b.pending
    proxy.mode = "pass"
    report = reg.flush()
    assert sorted(r.name for r in report.registered) == [f"{model_name}-a", f"{model_name}-b"]


def test_one_deadline_bounds_lookups_create_and_aliases_of_a_slow_server(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
) -> None:
    reg = make(proxy.url, metrics, outbox_path)
    reg.register_model(model_name, "s3://bucket/0")
    proxy.delay_all = 0.8  # every request takes 0.8 s; lookup+create+converge+aliases > 4 s
    policy = RetryPolicy(max_attempts=3, deadline=2.0, attempt_timeout=30, initial_backoff=0.01)
    slow = make(proxy.url, metrics, outbox_path, retry_policy=policy)
    start = time.monotonic()
    receipt = slow.register_model(
        model_name, "s3://bucket/1", idempotency_key="slow-1", aliases=["a", "b", "c"]
    )
    elapsed = time.monotonic() - start
    print(f"\nslow server: call returned {receipt.status} after {elapsed:.2f} s (deadline 2.0 s)")
    assert elapsed < 2.0 + 0.3
    proxy.delay_all = 0
    proxy.wait_idle()
    report = reg.flush()  # whatever was left is finished exactly once
    assert report.still_pending == 0
    versions = MlflowClient(mlflow_server.url).search_model_versions(f"name = '{model_name}'")
    assert sum(mv.tags.get("hokusai.idempotency_key") == "slow-1" for mv in versions) == 1


def test_tls_against_a_plain_http_port_fails_instead_of_spooling(
    mlflow_server: MlflowServer, metrics: SdkMetrics, outbox_path: Path, model_name: str
) -> None:
    url = mlflow_server.url.replace("http://", "https://")
    reg = make(url, metrics, outbox_path)
    with pytest.raises(MlflowRequestError):
        reg.register_model(model_name, "s3://bucket/tls")
    assert reg.outbox is not None and reg.outbox.depth() == 0


def test_user_set_mlflow_retries_cannot_resend_the_create(
    mlflow_server: MlflowServer,
    proxy: FlakyProxy,
    metrics: SdkMetrics,
    outbox_path: Path,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    reg = make(proxy.url, metrics, outbox_path)
    proxy.mode = "503"
    assert reg.register_model(model_name, "s3://bucket/x").pending
    creates = [p for p in proxy.requests if "model-versions/create" in p]
    assert len(creates) == 1  # the first attempt; retries look the key up first
    assert len(proxy.requests) == FAST.max_attempts
