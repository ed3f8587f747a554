"""Model registration that survives MLflow outages: :class:`ModelRegistry`."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hokusai.breaker import BreakerConfig, CircuitBreaker, breaker_for
from hokusai.errors import MlflowRequestError, MlflowUnavailableError
from hokusai.metrics import SdkMetrics, default_metrics, redact_uri
from hokusai.outbox import Outbox, PendingRegistration, default_outbox_path
from hokusai.resilience import Resilience, RetryPolicy, configure_mlflow_http

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "IDEMPOTENCY_TAG",
    "FlushReport",
    "HealthReport",
    "ModelRegistry",
    "Registration",
    "resolve_tracking_uri",
]

logger = logging.getLogger("hokusai.core")

#: Model-version tag that carries the idempotency key of a registration.
IDEMPOTENCY_TAG = "hokusai.idempotency_key"
_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The explicit URI, else ``$MLFLOW_TRACKING_URI``; never MLflow's silent local default."""
    uri = tracking_uri if tracking_uri is not None else os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None or not uri.strip():
        raise ValueError(
            "no MLflow tracking URI: pass tracking_uri='http://mlflow.example:5000' "
            "or set the MLFLOW_TRACKING_URI environment variable"
        )
    return uri.strip()


@dataclass(frozen=True)
class Registration:
    """Result of :meth:`ModelRegistry.register_model`.

    ``status`` is ``"registered"`` (``version`` is set) or ``"pending"`` (MLflow was unavailable;
    the registration is in the outbox and ``flush()`` will register it exactly once under
    ``idempotency_key``). ``deduplicated`` tells that an earlier attempt -- a retry after a lost
    response, or a replay -- had already created the version.
    """

    status: Literal["registered", "pending"]
    name: str
    idempotency_key: str
    version: str | None = None
    deduplicated: bool = False
    reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True)
class FlushReport:
    """What :meth:`ModelRegistry.flush` did."""

    registered: list[Registration] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    still_pending: int = 0
    stopped_by: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """Result of :meth:`ModelRegistry.health` (API *and* database were exercised)."""

    healthy: bool
    tracking_uri: str
    latency_seconds: float
    breaker_state: str
    outbox_depth: int | None
    error: str | None = None


class ModelRegistry:
    """Registers models in MLflow through retries, a circuit breaker and a durable outbox.

    The tracking URI comes from ``tracking_uri=`` or ``$MLFLOW_TRACKING_URI`` (there is no silent
    local fallback). Transient failures (connection errors, timeouts, 429/502/503/504) are retried
    with jittered exponential backoff within ``retry_policy.deadline``; if MLflow stays
    unavailable the registration is spooled to a local SQLite outbox and a *pending* receipt is
    returned; :meth:`flush` (or ``hokusai-outbox flush``) replays it exactly once. Validation
    errors raise :class:`~hokusai.errors.MlflowRequestError` at once and are never spooled.

    Construction makes no network call:

    >>> registry = ModelRegistry("http://127.0.0.1:5000", spool=False)
    >>> registry
    ModelRegistry(tracking_uri='http://127.0.0.1:5000')
    >>> ModelRegistry(None)
    Traceback (most recent call last):
    ...
    ValueError: no MLflow tracking URI: pass tracking_uri='http://mlflow.example:5000' or set \
the MLFLOW_TRACKING_URI environment variable

    Registering (needs a running MLflow server)::

        from hokusai.core import ModelRegistry
        from hokusai.tracking import ExperimentManager

        registry = ModelRegistry("http://127.0.0.1:5000")
        receipt = registry.register_model(
            "churn-model", "s3://models/churn/7", tags={"team": "ml"}, aliases=["candidate"]
        )
        if receipt.pending:          # MLflow was down: it sits in the outbox
            print("spooled as", receipt.idempotency_key)
        else:
            print("registered version", receipt.version)
        registry.flush()             # later: replays the outbox exactly once

        manager = ExperimentManager(registry=registry, experiment_name="churn")

    ``registry.health()`` runs a probe that touches the API and the database;
    metrics go to ``prometheus_client.REGISTRY`` unless ``metrics=SdkMetrics(my_registry)``.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        registry_uri: str | None = None,
        retry_policy: RetryPolicy | None = None,
        breaker_config: BreakerConfig | None = None,
        breaker: CircuitBreaker | None = None,
        spool: bool = True,
        outbox_path: str | os.PathLike[str] | None = None,
        metrics: SdkMetrics | None = None,
        client: MlflowClient | None = None,
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.registry_uri = registry_uri
        self.retry_policy = retry_policy or RetryPolicy()
        self.metrics = metrics or default_metrics()
        self.breaker = breaker or breaker_for(self.tracking_uri, breaker_config)
        configure_mlflow_http(self.retry_policy)
        if client is None:
            from mlflow import MlflowClient  # heavy import: only when a client is needed

            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri)
        self.client = client
        self.resilience = Resilience(
            self.tracking_uri, policy=self.retry_policy, breaker=self.breaker, metrics=self.metrics
        )
        self.outbox: Outbox | None = None
        if spool:
            self.outbox = Outbox(Path(outbox_path) if outbox_path else default_outbox_path())
            self._update_depth()

    def __repr__(self) -> str:
        return f"ModelRegistry(tracking_uri={redact_uri(self.tracking_uri)!r})"

    # -- public API ------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        source: str | None = None,
        *,
        run_id: str | None = None,
        artifact_path: str = "model",
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Registration:
        """Create the registered model if missing, then a version from *source* or a run.

        ``source`` is an artifact URI; without it ``run_id`` (+ ``artifact_path``) names the
        run's artifact. Pass your own ``idempotency_key`` to make a *caller-level* retry
        (e.g. a re-run pipeline step) return the same version instead of a new one.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("register_model needs a model name, e.g. register_model('churn', ...)")
        if source is None:
            if not run_id:
                raise ValueError(
                    "register_model needs source='s3://...' or run_id='<run id>' "
                    "(with artifact_path='model')"
                )
            source = f"runs:/{run_id}/{artifact_path}"
        key = idempotency_key or uuid.uuid4().hex
        if not _KEY_RE.match(key):
            raise ValueError(
                f"idempotency_key {key!r} must match {_KEY_RE.pattern}, e.g. a uuid4().hex"
            )
        for k, v in (tags or {}).items():
            if k == IDEMPOTENCY_TAG:
                raise ValueError(f"tag {IDEMPOTENCY_TAG!r} is reserved: use idempotency_key=")
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"tags must be str -> str, got {k!r}: {v!r}")
        reg = PendingRegistration.new(
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            name=name,
            source=source,
            run_id=run_id,
            tags=tags,
            aliases=aliases,
            description=description,
            idempotency_key=key,
        )
        try:
            # A caller-supplied key may have been used before (a re-run pipeline step): look it
            # up first. A fresh key cannot exist yet, so the healthy path stays one request.
            return self._register(
                reg, operation="register_model", lookup_first=idempotency_key is not None
            )
        except MlflowUnavailableError as exc:
            if self.outbox is None:
                raise
            self.outbox.add(reg)
            self._update_depth()
            self.metrics.calls.labels(operation="register_model", outcome="spooled").inc()
            logger.warning(
                "MLflow at %s unavailable (%s): registration of %r spooled to %s as %s",
                redact_uri(self.tracking_uri),
                exc.cause,
                name,
                self.outbox.path,
                key,
            )
            return Registration(status="pending", name=name, idempotency_key=key, reason=exc.cause)

    def find_version(self, name: str, idempotency_key: str) -> ModelVersion | None:
        """The version of *name* registered under *idempotency_key*, if any (with retries)."""
        return self.resilience.call(
            "find_version", lambda _attempt: self._find_by_key(name, idempotency_key)
        )

    def list_versions(self, name: str) -> list[ModelVersion]:
        """All versions of registered model *name* (with retries)."""
        escaped = name.replace("'", "\\'")

        def search(_attempt: int) -> list[ModelVersion]:
            return list(self.client.search_model_versions(f"name = '{escaped}'"))

        return self.resilience.call("list_versions", search)

    def flush(self, *, limit: int | None = None) -> FlushReport:
        """Replay this tracking URI's spooled registrations, oldest first, exactly once each.

        Each replay first looks up the idempotency key, so a version created by an earlier
        attempt (or an interrupted flush) is found rather than duplicated. Replay stops at the
        first transient failure (MLflow still down); refused registrations are marked failed.
        """
        if self.outbox is None:
            return FlushReport()
        registered: list[Registration] = []
        failed: list[tuple[str, str]] = []
        stopped_by: str | None = None
        with self.outbox.replay_lock():
            pending = self.outbox.entries("pending", tracking_uri=self.tracking_uri)
            if limit is not None:
                pending = pending[:limit]
            for reg in pending:
                try:
                    result = self._register(reg, operation="replay", lookup_first=True)
                except MlflowUnavailableError as exc:
                    self.outbox.record_attempt(reg.idempotency_key, error=str(exc))
                    stopped_by = exc.cause
                    logger.warning("flush stopped: MLflow still unavailable (%s)", exc.cause)
                    break
                except MlflowRequestError as exc:
                    self.outbox.mark_failed(reg.idempotency_key, error=str(exc))
                    failed.append((reg.idempotency_key, str(exc)))
                    logger.error(
                        "replay of %s refused, marked failed: %s", reg.idempotency_key, exc
                    )
                    continue
                assert result.version is not None
                self.outbox.mark_done(reg.idempotency_key, version=result.version)
                registered.append(result)
        depth = self._update_depth()
        return FlushReport(
            registered=registered, failed=failed, still_pending=depth, stopped_by=stopped_by
        )

    def health(self) -> HealthReport:
        """Probe MLflow with real queries (experiments and registered models hit the DB).

        MLflow's ``/health`` answers without touching the database, so it cannot tell a server
        whose backend store is gone from a healthy one; this probe can. It makes one attempt,
        does not retry and does not move the breaker.
        """
        start = time.monotonic()
        error: str | None = None
        try:
            self.client.search_experiments(max_results=1)
            self.client.search_registered_models(max_results=1)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = time.monotonic() - start
        self.metrics.calls.labels(
            operation="health", outcome="success" if error is None else "error"
        ).inc()
        self.metrics.latency.labels(operation="health").observe(latency)
        return HealthReport(
            healthy=error is None,
            tracking_uri=redact_uri(self.tracking_uri),
            latency_seconds=latency,
            breaker_state=self.breaker.state,
            outbox_depth=self.outbox.depth() if self.outbox is not None else None,
            error=error,
        )

    # -- internals -------------------------------------------------------------------------

    def _update_depth(self) -> int:
        if self.outbox is None:
            return 0
        depth = self.outbox.depth()
        self.metrics.outbox_depth.labels(outbox=str(self.outbox.path)).set(depth)
        return depth

    def _find_by_key(self, name: str, key: str) -> ModelVersion | None:
        found = self.client.search_model_versions(f"tags.`{IDEMPOTENCY_TAG}` = '{key}'")
        matches = [mv for mv in found if mv.name == name]
        if not matches:
            return None
        # More than one would mean a duplicate created outside the SDK: return the oldest.
        return min(matches, key=lambda mv: int(mv.version))

    def _create_version(self, reg: PendingRegistration) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        tags = {**reg.tags, IDEMPOTENCY_TAG: reg.idempotency_key}

        def create() -> ModelVersion:
            return self.client.create_model_version(
                reg.name,
                reg.source,
                run_id=reg.run_id,
                tags=tags,
                description=reg.description,
                await_creation_for=0,
            )

        try:
            return create()
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            # Either the registered model or the run is missing; only the former is ours to fix.
            try:
                self.client.get_registered_model(reg.name)
            except MlflowException as missing:
                if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            else:
                raise
        try:
            self.client.create_registered_model(reg.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return create()

    def _register(
        self, reg: PendingRegistration, *, operation: str, lookup_first: bool
    ) -> Registration:
        deduplicated = False

        def attempt(n: int) -> ModelVersion:
            nonlocal deduplicated
            # A first attempt cannot have a predecessor; a retry or a replay may (lost response).
            if lookup_first or n > 1:
                existing = self._find_by_key(reg.name, reg.idempotency_key)
                if existing is not None:
                    deduplicated = True
                    return existing
            return self._create_version(reg)

        mv = self.resilience.call(operation, attempt)
        version = str(mv.version)
        if deduplicated:
            self.metrics.calls.labels(operation=operation, outcome="deduplicated").inc()
            logger.info(
                "%s: version %s of %r already registered under key %s (earlier attempt)",
                operation,
                version,
                reg.name,
                reg.idempotency_key,
            )
        for alias in reg.aliases:

            def set_alias(_attempt: int, alias: str = alias) -> None:
                self.client.set_registered_model_alias(reg.name, alias, version)

            self.resilience.call("set_alias", set_alias)
        return Registration(
            status="registered",
            name=reg.name,
            idempotency_key=reg.idempotency_key,
            version=version,
            deduplicated=deduplicated,
        )
