"""An in-memory stand-in for the parts of ``MlflowClient`` the SDK uses (unit tests only)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST


@dataclass
class FakeVersion:
    name: str
    version: str
    source: str
    run_id: str | None
    tags: dict[str, str]
    model_id: str | None = None


@dataclass
class FakeClient:
    models: set[str] = field(default_factory=set)
    versions: list[FakeVersion] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    # hooks: method name -> callable(phase) raising before ("before") or after ("after") the effect
    faults: dict[str, Callable[[str], None]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _fault(self, method: str, phase: str) -> None:
        hook = self.faults.get(method)
        if hook is not None:
            hook(phase)

    def create_model_version(self, name: str, source: str, **kw: Any) -> FakeVersion:
        self.calls.append(("create_model_version", (name, source)))
        self._fault("create_model_version", "before")
        if name not in self.models:
            raise MlflowException(
                f"Registered Model with name={name} not found", error_code=RESOURCE_DOES_NOT_EXIST
            )
        n = self.created[name] = self.created.get(name, 0) + 1  # never reused, like MLflow
        mv = FakeVersion(
            name, str(n), source, kw.get("run_id"), dict(kw.get("tags") or {}), kw.get("model_id")
        )
        self.versions.append(mv)
        self._fault("create_model_version", "after")
        return mv

    def get_registered_model(self, name: str) -> str:
        self.calls.append(("get_registered_model", (name,)))
        if name not in self.models:
            raise MlflowException("not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return name

    def create_registered_model(self, name: str) -> str:
        self.calls.append(("create_registered_model", (name,)))
        if name in self.models:
            raise MlflowException("exists", error_code=RESOURCE_ALREADY_EXISTS)
        self.models.add(name)
        return name

    def search_model_versions(self, filter_string: str) -> list[FakeVersion]:
        self.calls.append(("search_model_versions", (filter_string,)))
        self._fault("search_model_versions", "before")
        key = filter_string.rsplit("'", 2)[-2]
        return [v for v in self.versions if v.tags.get("hokusai.idempotency_key") == key]

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append(("set_registered_model_alias", (name, alias, version)))
        self._fault("set_registered_model_alias", "before")
        self.aliases[(name, alias)] = version

    def get_model_version_by_alias(self, name: str, alias: str) -> FakeVersion:
        self.calls.append(("get_model_version_by_alias", (name, alias)))
        version = self.aliases.get((name, alias))
        if version is None:
            raise MlflowException("no alias", error_code=RESOURCE_DOES_NOT_EXIST)
        return next(v for v in self.versions if (v.name, v.version) == (name, version))

    def delete_model_version(self, name: str, version: str) -> None:
        self.calls.append(("delete_model_version", (name, version)))
        self.versions = [v for v in self.versions if (v.name, v.version) != (name, version)]

    def search_experiments(self, max_results: int = 1) -> list[str]:
        self.calls.append(("search_experiments", (max_results,)))
        self._fault("search_experiments", "before")
        return []

    def search_registered_models(self, max_results: int = 1) -> list[str]:
        self.calls.append(("search_registered_models", (max_results,)))
        return []

    # tracking
    def get_experiment_by_name(self, name: str) -> Any:
        self.calls.append(("get_experiment_by_name", (name,)))
        self._fault("get_experiment_by_name", "before")
        if name in self.experiments:
            return type("Exp", (), {"experiment_id": self.experiments[name]})()
        return None

    def create_experiment(self, name: str) -> str:
        self.calls.append(("create_experiment", (name,)))
        self.experiments[name] = str(next(self._ids))
        return self.experiments[name]

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: Any = None) -> Any:
        self.calls.append(("create_run", (experiment_id, run_name)))
        info = type("Info", (), {"run_id": f"run-{experiment_id}"})()
        return type("Run", (), {"info": info})()

    def set_terminated(self, run_id: str, status: str | None = None) -> None:
        self.calls.append(("set_terminated", (run_id, status)))
        self._fault("set_terminated", "before")

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = ()) -> None:
        self.calls.append(
            (
                "log_batch",
                (
                    run_id,
                    tuple((m.key, m.value) for m in metrics),
                    tuple((p.key, p.value) for p in params),
                ),
            )
        )

    def search_runs(self, experiment_ids: list[str], **kw: Any) -> list[str]:
        self.calls.append(("search_runs", (tuple(experiment_ids),)))
        return [f"run-{experiment_ids[0]}"]


def connection_refused(phase: str) -> None:
    """A fault hook: the request never reached MLflow."""
    if phase == "before":
        raise MlflowException("API request failed") from ConnectionRefusedError("refused")
