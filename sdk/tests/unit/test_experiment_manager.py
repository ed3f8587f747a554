"""ExperimentManager: every construction form, every refused combination, the deprecation."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry
from hokusai.errors import MlflowUnavailableError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy
from hokusai.tracking import DEFAULT_EXPERIMENT_NAME, ExperimentManager

from .fakes import FakeClient, connection_refused

URI = "http://127.0.0.1:5999"


@pytest.fixture
def registry(tmp_path: Any, metrics: SdkMetrics, breaker: CircuitBreaker) -> ModelRegistry:
    return ModelRegistry(
        URI,
        client=FakeClient(),  # type: ignore[arg-type]
        metrics=metrics,
        breaker=breaker,
        outbox_path=tmp_path / "outbox.sqlite3",
    )


class BareRegistry:
    """A registry-like object from an older SDK: only a tracking_uri."""

    def __init__(self, uri: str) -> None:
        self.tracking_uri = uri


# -- accepted forms ------------------------------------------------------------------------


def test_registry_keyword_uses_default_name_and_shares_client(registry: ModelRegistry) -> None:
    m = ExperimentManager(registry=registry)
    assert m.experiment_name == DEFAULT_EXPERIMENT_NAME
    assert m.tracking_uri == URI
    assert m.client is registry.client
    assert m.resilience is registry.resilience  # same breaker and metrics


def test_registry_keyword_with_name(registry: ModelRegistry) -> None:
    m = ExperimentManager(registry=registry, experiment_name="x")
    assert (m.experiment_name, m.tracking_uri) == ("x", URI)


def test_positional_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    m = ExperimentManager("x")
    assert (m.experiment_name, m.tracking_uri, m.registry) == ("x", URI, None)


def test_keyword_name_uses_env_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    m = ExperimentManager(experiment_name="x")
    assert (m.experiment_name, m.tracking_uri) == ("x", URI)


def test_positional_name_with_registry(registry: ModelRegistry) -> None:
    m = ExperimentManager("x", registry=registry)
    assert (m.experiment_name, m.tracking_uri, m.registry) == ("x", URI, registry)


def test_explicit_tracking_uri_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    m = ExperimentManager("x", tracking_uri=URI)
    assert m.tracking_uri == URI


def test_matching_tracking_uri_with_registry_is_accepted(registry: ModelRegistry) -> None:
    m = ExperimentManager("x", registry=registry, tracking_uri=URI + "/")
    assert m.tracking_uri == URI


def test_name_is_stripped(registry: ModelRegistry) -> None:
    assert ExperimentManager("  x ", registry=registry).experiment_name == "x"


def test_positional_registry_warns_and_works(registry: ModelRegistry) -> None:
    with pytest.warns(DeprecationWarning, match=r"registry=registry") as record:
        m = ExperimentManager(registry)  # type: ignore[arg-type]
    assert record[0].filename == __file__  # stacklevel=2 points at the caller
    assert m.registry is registry
    assert m.experiment_name == DEFAULT_EXPERIMENT_NAME
    assert m.client is registry.client


def test_positional_registry_with_keyword_name_warns(registry: ModelRegistry) -> None:
    with pytest.warns(DeprecationWarning, match="registry=registry"):
        m = ExperimentManager(registry, experiment_name="x")  # type: ignore[arg-type]
    assert m.experiment_name == "x"


def test_registry_like_object_without_client(monkeypatch: pytest.MonkeyPatch) -> None:
    m = ExperimentManager(registry=BareRegistry(URI), experiment_name="x")  # type: ignore[arg-type]
    assert m.tracking_uri == URI
    assert m.client is not None


def test_keyword_forms_do_not_warn(registry: ModelRegistry) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ExperimentManager(registry=registry)
        ExperimentManager("x", registry=registry)


# -- refused combinations ------------------------------------------------------------------


def test_registry_positional_and_keyword(registry: ModelRegistry) -> None:
    with pytest.raises(TypeError, match=r"both positionally and as registry=.*registry=registry"):
        ExperimentManager(registry, registry=registry)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, 3.5, {"tracking_uri": 1}, ["x"], None, b"x"])
def test_first_argument_of_wrong_type(bad: Any) -> None:
    with pytest.raises(
        TypeError, match=r"experiment name \(str\) or a registry.*registry=registry"
    ):
        ExperimentManager(bad)


def test_nothing_at_all() -> None:
    with pytest.raises(TypeError, match=r"needs an experiment name or a registry"):
        ExperimentManager()


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_empty_or_whitespace_name(name: str, registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match=r"must not be empty.*experiment_name='my-experiment'"):
        ExperimentManager(name, registry=registry)
    with pytest.raises(ValueError, match=r"must not be empty"):
        ExperimentManager(registry=registry, experiment_name=name)


def test_non_string_keyword_name(registry: ModelRegistry) -> None:
    with pytest.raises(TypeError, match=r"experiment_name must be a str, got int"):
        ExperimentManager(registry=registry, experiment_name=7)  # type: ignore[arg-type]


def test_name_both_positional_and_keyword(registry: ModelRegistry) -> None:
    with pytest.raises(TypeError, match=r"both positionally and as experiment_name="):
        ExperimentManager("x", registry=registry, experiment_name="y")


def test_tracking_uri_contradicting_registry(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match=r"contradicts the registry's.*drop tracking_uri="):
        ExperimentManager("x", registry=registry, tracking_uri="http://127.0.0.1:1")


def test_contradiction_message_hides_credentials(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="contradicts") as info:
        ExperimentManager("x", registry=registry, tracking_uri="http://u:secret@127.0.0.1:1")
    assert "secret" not in str(info.value)


def test_registry_keyword_of_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"registry= must have a str tracking_uri"):
        ExperimentManager("x", registry=object())  # type: ignore[arg-type]


def test_no_tracking_uri_anywhere() -> None:
    with pytest.raises(ValueError, match=r"tracking_uri=.*MLFLOW_TRACKING_URI"):
        ExperimentManager("x")


# -- behaviour is identical for both forms ------------------------------------------------


def _exercise(m: ExperimentManager) -> list[tuple[str, tuple[Any, ...]]]:
    client = m.client
    assert isinstance(client, FakeClient)
    first = m.ensure_experiment()
    assert m.experiment_id == first
    with m.start_run(run_name="r") as run:
        run.log_params({"lr": 0.1})
        run.log_metrics({"auc": 0.9}, step=1)
    m.list_runs()
    return client.calls


def test_methods_behave_identically_for_both_forms(
    tmp_path: Any, metrics: SdkMetrics, breaker: CircuitBreaker
) -> None:
    def make(client: FakeClient) -> ModelRegistry:
        return ModelRegistry(
            URI,
            client=client,
            metrics=metrics,
            breaker=breaker,  # type: ignore[arg-type]
            outbox_path=tmp_path / "o.sqlite3",
        )

    with pytest.warns(DeprecationWarning, match="registry=registry"):
        old = ExperimentManager(make(FakeClient()), experiment_name="e")  # type: ignore[arg-type]
    new = ExperimentManager(registry=make(FakeClient()), experiment_name="e")
    old_calls, new_calls = _exercise(old), _exercise(new)
    assert old_calls == new_calls
    names = [c[0] for c in new_calls]
    assert names == [
        "get_experiment_by_name",
        "create_experiment",
        "create_run",
        "log_batch",
        "log_batch",
        "set_terminated",
        "search_runs",
    ]
    assert ("set_terminated", ("run-1", "FINISHED")) in new_calls


def test_failed_block_marks_run_failed(registry: ModelRegistry) -> None:
    m = ExperimentManager("e", registry=registry)
    with pytest.raises(RuntimeError), m.start_run():
        raise RuntimeError("training crashed")
    assert ("set_terminated", ("run-1", "FAILED")) in registry.client.calls  # type: ignore[attr-defined]


def test_unreachable_mlflow_raises_typed_error_not_fake_data(
    tmp_path: Any, metrics: SdkMetrics
) -> None:
    client = FakeClient(faults={"get_experiment_by_name": connection_refused})
    m = ExperimentManager(
        "e",
        tracking_uri=URI,
        client=client,  # type: ignore[arg-type]
        retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0, max_backoff=0),
        metrics=metrics,
    )
    m.resilience.breaker = CircuitBreaker("private", failure_threshold=100)
    with pytest.raises(MlflowUnavailableError, match=r"unavailable \(connection error"):
        m.ensure_experiment()
    assert [c[0] for c in client.calls] == ["get_experiment_by_name"] * 2
