"""Experiment tracking: :class:`ExperimentManager`."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hokusai.breaker import CircuitBreaker, breaker_for
from hokusai.core import resolve_tracking_uri
from hokusai.metrics import SdkMetrics, default_metrics, redact_uri
from hokusai.resilience import Resilience, RetryPolicy, configure_mlflow_http

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["DEFAULT_EXPERIMENT_NAME", "ExperimentManager", "RegistryLike", "TrackedRun"]

#: Experiment used when only a registry is given.
DEFAULT_EXPERIMENT_NAME = "hokusai-default"

_UNSET: Any = object()
logger = logging.getLogger("hokusai.tracking")


@runtime_checkable
class RegistryLike(Protocol):
    """Anything with a ``tracking_uri`` string, e.g. :class:`hokusai.core.ModelRegistry`.

    If it also has ``client`` (an ``MlflowClient``) and ``resilience`` attributes, the manager
    shares them (and therefore the circuit breaker) instead of building its own.
    """

    tracking_uri: str


def _is_registry_like(obj: object) -> bool:
    return not isinstance(obj, str) and isinstance(getattr(obj, "tracking_uri", None), str)


def _clean_name(name: object, how: str) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"experiment_name must be a str, got {type(name).__name__} ({how}); "
            "use ExperimentManager(experiment_name='my-experiment', registry=registry)"
        )
    if not name.strip():
        raise ValueError(
            f"experiment_name must not be empty or whitespace (got {name!r}); "
            "use ExperimentManager(experiment_name='my-experiment', registry=registry)"
        )
    return name.strip()


class TrackedRun:
    """A run started by :meth:`ExperimentManager.start_run`; log through it."""

    def __init__(self, manager: ExperimentManager, run_id: str) -> None:
        self.manager = manager
        self.run_id = run_id

    def log_params(self, params: Mapping[str, object]) -> None:
        self.manager.log_params(self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.manager.log_metrics(self.run_id, metrics, step=step)


class ExperimentManager:
    """Creates an experiment (if missing) and tracks runs, params and metrics in it.

    Construction forms (all equivalent in behaviour; construction makes no network call):

    >>> from hokusai.core import ModelRegistry
    >>> registry = ModelRegistry("http://127.0.0.1:5000", spool=False)
    >>> ExperimentManager(registry=registry).experiment_name         # documented default
    'hokusai-default'
    >>> ExperimentManager(registry=registry, experiment_name="churn").experiment_name
    'churn'
    >>> ExperimentManager("churn", registry=registry).tracking_uri
    'http://127.0.0.1:5000'
    >>> ExperimentManager("churn", tracking_uri="http://127.0.0.1:5000").registry is None
    True
    >>> import os; os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:5000"
    >>> ExperimentManager(experiment_name="churn").tracking_uri     # from $MLFLOW_TRACKING_URI
    'http://127.0.0.1:5000'
    >>> del os.environ["MLFLOW_TRACKING_URI"]

    The old positional form still works but warns:

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old = ExperimentManager(registry)
    >>> caught[0].category.__name__, old.experiment_name
    ('DeprecationWarning', 'hokusai-default')

    Ambiguous calls are refused with the fix in the message:

    >>> ExperimentManager(42)
    Traceback (most recent call last):
    ...
    TypeError: the first argument must be an experiment name (str) or a registry with a \
tracking_uri, got int: 42; use ExperimentManager('my-experiment', registry=registry) or \
ExperimentManager(registry=registry)

    Usage::

        manager = ExperimentManager("churn", registry=registry)
        with manager.start_run(run_name="baseline") as run:
            run.log_params({"lr": 0.1})
            run.log_metrics({"auc": 0.91})
        for past in manager.list_runs():
            print(past.info.run_id, past.data.metrics)

    A registry supplies the tracking URI and client (and its circuit breaker); without one,
    ``tracking_uri=`` or ``$MLFLOW_TRACKING_URI`` is used. With only a registry the experiment is
    ``DEFAULT_EXPERIMENT_NAME`` (``"hokusai-default"``). The experiment is resolved to its id,
    and created if missing, on first use (:meth:`ensure_experiment`), so construction makes no
    network call. If MLflow cannot be reached the calls raise
    :class:`~hokusai.errors.MlflowUnavailableError` after retries; there is no mock mode.
    """

    def __init__(
        self,
        name_or_registry: str | RegistryLike = _UNSET,
        /,
        *,
        registry: RegistryLike | None = None,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        retry_policy: RetryPolicy | None = None,
        metrics: SdkMetrics | None = None,
        client: MlflowClient | None = None,
    ) -> None:
        positional_name: str | None = None
        if name_or_registry is not _UNSET:
            if isinstance(name_or_registry, str):
                positional_name = name_or_registry
            elif _is_registry_like(name_or_registry):
                if registry is not None:
                    raise TypeError(
                        "registry given both positionally and as registry=; "
                        "pass it once: ExperimentManager(registry=registry)"
                    )
                warnings.warn(
                    "passing the registry positionally is deprecated; use "
                    "ExperimentManager(registry=registry) or "
                    "ExperimentManager('experiment-name', registry=registry)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                registry = name_or_registry
            else:
                raise TypeError(
                    "the first argument must be an experiment name (str) or a registry with a "
                    f"tracking_uri, got {type(name_or_registry).__name__}: "
                    f"{name_or_registry!r}; use ExperimentManager('my-experiment', "
                    "registry=registry) or ExperimentManager(registry=registry)"
                )
        if registry is not None and not _is_registry_like(registry):
            raise TypeError(
                f"registry= must have a str tracking_uri (e.g. hokusai.core.ModelRegistry), got "
                f"{type(registry).__name__}; use ExperimentManager(registry=ModelRegistry(uri))"
            )
        if positional_name is not None and experiment_name is not None:
            raise TypeError(
                "experiment name given both positionally and as experiment_name=; pass it once: "
                f"ExperimentManager(experiment_name={experiment_name!r}, ...)"
            )

        name_arg = positional_name if positional_name is not None else experiment_name
        if name_arg is not None:
            self.experiment_name = _clean_name(
                name_arg, "positional" if positional_name is not None else "experiment_name="
            )
        elif registry is not None:
            self.experiment_name = DEFAULT_EXPERIMENT_NAME
        else:
            raise TypeError(
                "ExperimentManager needs an experiment name or a registry: "
                "ExperimentManager('my-experiment', tracking_uri='http://mlflow:5000') or "
                "ExperimentManager(registry=registry)"
            )

        if registry is not None:
            reg_uri = registry.tracking_uri
            if tracking_uri is not None and tracking_uri.rstrip("/") != reg_uri.rstrip("/"):
                raise ValueError(
                    f"tracking_uri={redact_uri(tracking_uri)!r} contradicts the registry's "
                    f"{redact_uri(reg_uri)!r}; drop tracking_uri= "
                    "(the registry supplies it): ExperimentManager(registry=registry, "
                    f"experiment_name={self.experiment_name!r})"
                )
            self.tracking_uri = reg_uri
        else:
            self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.registry = registry

        shared = getattr(registry, "resilience", None) if registry is not None else None
        if isinstance(shared, Resilience) and retry_policy is None and metrics is None:
            self.resilience = shared
        else:
            policy = retry_policy or RetryPolicy()
            breaker = getattr(registry, "breaker", None)
            if not isinstance(breaker, CircuitBreaker):
                breaker = breaker_for(self.tracking_uri)
            self.resilience = Resilience(
                self.tracking_uri,
                policy=policy,
                breaker=breaker,
                metrics=metrics or default_metrics(),
            )
        configure_mlflow_http(self.resilience.policy)
        if client is None and registry is not None:
            client = getattr(registry, "client", None)
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
        self.client: MlflowClient = client
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"ExperimentManager(experiment_name={self.experiment_name!r}, "
            f"tracking_uri={redact_uri(self.tracking_uri)!r})"
        )

    @property
    def experiment_id(self) -> str:
        """The experiment's id (the experiment is created on first access if missing)."""
        return self.ensure_experiment()

    def ensure_experiment(self) -> str:
        """Resolve the experiment to its id, creating it if missing. Returns the id."""
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        def resolve(_attempt: int) -> str:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(self.client.create_experiment(self.experiment_name))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                raced = self.client.get_experiment_by_name(self.experiment_name)
                if raced is None:
                    raise
                return str(raced.experiment_id)

        self._experiment_id = self.resilience.call("ensure_experiment", resolve)
        return self._experiment_id

    # Older callers used this name.
    create_experiment = ensure_experiment

    @contextlib.contextmanager
    def start_run(
        self, run_name: str | None = None, *, tags: Mapping[str, str] | None = None
    ) -> Iterator[TrackedRun]:
        """Start a run in the experiment; it ends FINISHED, or FAILED if the block raises."""
        experiment_id = self.ensure_experiment()
        run = self.resilience.call(
            "create_run",
            lambda _n: self.client.create_run(
                experiment_id, run_name=run_name, tags=dict(tags or {})
            ),
        )
        run_id = run.info.run_id
        try:
            yield TrackedRun(self, run_id)
        except BaseException as exc:
            # The block's exception is what the caller must see: a failure to mark the run
            # FAILED (MLflow down too) is logged and attached as a note, never raised instead.
            try:
                self.resilience.call(
                    "end_run", lambda _n: self.client.set_terminated(run_id, status="FAILED")
                )
            except Exception as end_exc:
                logger.error("could not mark run %s FAILED: %s", run_id, end_exc)
                if sys.version_info >= (3, 11):
                    exc.add_note(f"hokusai: marking run {run_id} FAILED also failed: {end_exc}")
            raise
        self.resilience.call(
            "end_run", lambda _n: self.client.set_terminated(run_id, status="FINISHED")
        )

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        batch = [Param(str(k), str(v)) for k, v in params.items()]
        self.resilience.call("log_params", lambda _n: self.client.log_batch(run_id, params=batch))

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        self.resilience.call("log_metrics", lambda _n: self.client.log_batch(run_id, metrics=batch))

    def list_runs(self, max_results: int = 100) -> list[Run]:
        """The experiment's runs, newest first."""
        experiment_id = self.ensure_experiment()
        return self.resilience.call(
            "list_runs",
            lambda _n: list(
                self.client.search_runs(
                    [experiment_id],
                    max_results=max_results,
                    order_by=["attributes.start_time DESC"],
                )
            ),
        )
