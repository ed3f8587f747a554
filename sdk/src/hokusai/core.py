"""Model registration that survives MLflow outages: :class:`ModelRegistry`."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hokusai.breaker import BreakerConfig, CircuitBreaker, breaker_for
from hokusai.errors import (
    AliasError,
    CircuitOpenError,
    IdempotencyConflictError,
    MlflowRequestError,
    MlflowUnavailableError,
)
from hokusai.metrics import SdkMetrics, default_metrics, redact_uri
from hokusai.outbox import Outbox, PendingRegistration, default_outbox_path
from hokusai.resilience import Deadline, Resilience, RetryPolicy, configure_mlflow_http
from hokusai.transient import is_auth_error

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "IDEMPOTENCY_TAG",
    "KEY_INDEX_ENV",
    "REQUESTED_AT_TAG",
    "FlushReport",
    "HealthReport",
    "ModelRegistry",
    "Registration",
    "resolve_tracking_uri",
]

logger = logging.getLogger("hokusai.core")

#: Model-version tag that carries the idempotency key of a registration.
IDEMPOTENCY_TAG = "hokusai.idempotency_key"
#: Model-version tag with the time (epoch seconds) ``register_model`` was called: a replay never
#: moves an alias away from a version whose registration was requested later.
REQUESTED_AT_TAG = "hokusai.requested_at"
#: Environment variable that tells the SDK the server has the unique key index (``1``/``true``).
KEY_INDEX_ENV = "HOKUSAI_KEY_INDEX"
_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# MLflow's answer when the version insert keeps violating a constraint: with the index, that is
# "this key is taken"; without it, version-number contention (MLflow retried 3 times itself).
_CREATE_CONFLICT = "Model Version creation error"


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
    the registration is in the outbox and will be registered exactly once under
    ``idempotency_key``). ``deduplicated`` tells that an earlier attempt -- a retry after a lost
    response, a concurrent caller with the same key, or a replay -- had already created the
    version. ``source``, ``run_id`` and ``model_id`` are the version's as MLflow stored them.
    ``aliases_pending`` lists aliases that could not be set yet (MLflow went away after the
    create); the outbox sets them later, never moving an alias to an older version.
    """

    status: Literal["registered", "pending"]
    name: str
    idempotency_key: str
    version: str | None = None
    deduplicated: bool = False
    reason: str | None = None
    source: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    aliases_pending: tuple[str, ...] = ()

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


def _validate_alias(alias: object) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
    )

    if not isinstance(alias, str):
        raise TypeError(f"aliases must be str, got {alias!r}: aliases=['champion']")
    try:
        _validate_model_alias_name(alias)  # type: ignore[no-untyped-call]
        _validate_model_alias_name_reserved(alias)  # type: ignore[no-untyped-call]
    except MlflowException as exc:
        raise ValueError(f"alias {alias!r} would be refused by MLflow: {exc.message}") from exc
    return alias


def _requested_at(mv: Any) -> float:
    """When *mv*'s registration was requested: our tag, else MLflow's creation time."""
    tags = getattr(mv, "tags", None) or {}
    try:
        return float(tags[REQUESTED_AT_TAG])
    except (KeyError, ValueError):
        created = getattr(mv, "creation_timestamp", None)
        return float(created) / 1000.0 if created else float("inf")


def _server_error(exc: BaseException) -> bool:
    """HTTP 500 from MLflow (urllib3 reports it as "too many 500 error responses")."""
    text = str(exc)
    return (
        _CREATE_CONFLICT in text
        or "too many 500 error responses" in text
        or "error code 500" in text
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _logged_model_id(source: str | None) -> str | None:
    """``m-...`` from ``models:/m-...`` (a logged model), else ``None``."""
    if source is None or not source.startswith("models:/"):
        return None
    rest = source[len("models:/") :].strip("/")
    return rest if rest.startswith("m-") and "/" not in rest and "@" not in rest else None


class _Drainer:
    """Background replay of one registry's outbox rows, started on demand.

    Runs while this registry's tracking URI has pending rows: it waits for the breaker's next
    probe slot, flushes a bounded batch (the flush's first request *is* the probe), and exits
    when nothing is pending, when a flush stops on an authentication error (that needs a human)
    or when the registry is closed.
    """

    def __init__(self, registry: ModelRegistry, batch: int, pause: float) -> None:
        self._registry = weakref.ref(registry)
        self._batch = batch
        self._pause = pause
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.runs = 0

    def kick(self) -> None:
        with self._lock:
            self._wake.set()
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="hokusai-drain", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        self.runs += 1
        while not self._stop.is_set():
            registry = self._registry()
            if registry is None or registry.outbox is None:
                return
            if registry.outbox.depth(registry.tracking_uri, registry.registry_uri or "") == 0:
                return
            wait = registry.breaker.seconds_until_probe()
            del registry  # no strong reference while sleeping
            if wait > 0:
                self._wake.clear()
                self._wake.wait(wait + 0.01)
                continue
            registry = self._registry()
            if registry is None:
                return
            try:
                report = registry.flush(limit=self._batch, blocking=False)
            except Exception:
                logger.exception("background drain of %s failed", registry.outbox)
                report = FlushReport(stopped_by="error")
            del registry
            if report.stopped_by is not None and report.stopped_by.startswith("authentication"):
                logger.error("background drain stopped: %s", report.stopped_by)
                return
            if not report.registered:
                self._wake.clear()
                self._wake.wait(self._pause)


class ModelRegistry:
    """Registers models in MLflow through retries, a circuit breaker and a durable outbox.

    The tracking URI comes from ``tracking_uri=`` or ``$MLFLOW_TRACKING_URI`` (there is no silent
    local fallback). Transient failures (connection errors, timeouts, 429/502/503/504) are retried
    with jittered exponential backoff within ``retry_policy.deadline`` -- one deadline for the
    whole call, enforced; if MLflow stays unavailable the registration is spooled to a local
    SQLite outbox, a *pending* receipt is returned and a background drain registers it once MLflow
    answers again (``auto_drain=False`` to leave that to :meth:`flush` / ``hokusai-outbox
    flush``). Validation errors raise :class:`~hokusai.errors.MlflowRequestError` at once and are
    never spooled.

    ``key_index=True`` (or ``$HOKUSAI_KEY_INDEX=1``) says the server's database has the unique
    index on the idempotency tag (the platform's MLflow role creates it): then a registration is
    one request even with your own key, and duplicates are impossible. Without it the SDK looks
    caller keys up first and converges concurrent duplicates to the lowest version.

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

        registry = ModelRegistry("http://127.0.0.1:5000")
        receipt = registry.register_model("churn-model", run_id=run_id, aliases=["candidate"])
        if receipt.pending:          # MLflow was down: it sits in the outbox, drained soon
            print("spooled as", receipt.idempotency_key)
        else:
            print("registered version", receipt.version, "from", receipt.source)

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
        key_index: bool | None = None,
        auto_drain: bool = True,
        max_replay_strikes: int = 5,
        drain_batch: int = 100,
    ) -> None:
        if breaker is not None and breaker_config is not None:
            raise TypeError(
                "pass breaker= or breaker_config=, not both: "
                "ModelRegistry(uri, breaker=CircuitBreaker(uri, reset_timeout=1.0))"
            )
        if max_replay_strikes < 1 or drain_batch < 1:
            raise ValueError("max_replay_strikes and drain_batch must be >= 1, e.g. 5 and 100")
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.registry_uri = registry_uri
        self.retry_policy = retry_policy or RetryPolicy()
        self.metrics = metrics or default_metrics()
        self.breaker = breaker or breaker_for(self.tracking_uri, breaker_config)
        if key_index is None:
            key_index = os.environ.get(KEY_INDEX_ENV, "").strip().lower() in ("1", "true", "yes")
        self.key_index = key_index
        self.max_replay_strikes = max_replay_strikes
        configure_mlflow_http(self.retry_policy)
        if client is None:
            from mlflow import MlflowClient  # heavy import: only when a client is needed

            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri)
        self.client = client
        self.resilience = Resilience(
            self.tracking_uri, policy=self.retry_policy, breaker=self.breaker, metrics=self.metrics
        )
        self.outbox: Outbox | None = None
        self._drainer: _Drainer | None = None
        self._drain_checked = False
        if spool:
            self.outbox = Outbox(Path(outbox_path) if outbox_path else default_outbox_path())
            self.metrics.watch_outbox(str(self.outbox.path), self.outbox.stats)
            if auto_drain:
                self._drainer = _Drainer(self, batch=drain_batch, pause=1.0)
                ref = weakref.ref(self)
                initial = [True]  # add_listener reports the current state at once: not a change

                def on_state(_name: str, state: str) -> None:
                    if initial[0]:
                        initial[0] = False
                        return
                    me = ref()
                    if state == "closed" and me is not None:
                        me._kick_drain_if_pending()

                self.breaker.add_listener(on_state, key=("hokusai-drain", id(self)))

    def __repr__(self) -> str:
        return f"ModelRegistry(tracking_uri={redact_uri(self.tracking_uri)!r})"

    def close(self) -> None:
        """Stop the background drain (rows stay in the outbox)."""
        if self._drainer is not None:
            self._drainer.stop(timeout=self.retry_policy.deadline)

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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

        ``source`` is an artifact URI or a ``models:/`` URI (``models:/m-<id>`` for an MLflow 3
        logged model). Without it, ``run_id`` names the run whose logged model called
        *artifact_path* is registered -- resolved like ``mlflow.register_model('runs:/...')``.
        Pass your own ``idempotency_key`` to make a *caller-level* retry (e.g. a re-run pipeline
        step) return the same version instead of a new one. The whole call -- lookups, creation,
        aliases -- ends within ``retry_policy.deadline``.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("register_model needs a model name, e.g. register_model('churn', ...)")
        if source is None and not run_id:
            raise ValueError(
                "register_model needs source='s3://...' / 'models:/...' or run_id='<run id>' "
                "(with artifact_path='model')"
            )
        key = idempotency_key or uuid.uuid4().hex
        if not _KEY_RE.match(key):
            raise ValueError(
                f"idempotency_key {key!r} must match {_KEY_RE.pattern}, e.g. a uuid4().hex"
            )
        for k, v in (tags or {}).items():
            if k in (IDEMPOTENCY_TAG, REQUESTED_AT_TAG):
                raise ValueError(f"tag {k!r} is reserved (the SDK sets it; use idempotency_key=)")
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"tags must be str -> str, got {k!r}: {v!r}")
        if isinstance(aliases, str):
            raise TypeError(f"aliases must be a list of names: aliases=[{aliases!r}]")
        checked_aliases = tuple(_validate_alias(a) for a in aliases)
        reg = PendingRegistration.new(
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            name=name,
            source=source,
            run_id=run_id,
            artifact_path=artifact_path,
            tags=tags,
            aliases=checked_aliases,
            description=description,
            idempotency_key=key,
        )
        if self.outbox is not None and idempotency_key is not None:
            self.outbox.check(reg)  # a reused key with another payload: refused before any I/O
        start = time.monotonic()
        outcome = "error"
        try:
            result = self._register(
                reg,
                Deadline(self.retry_policy.deadline),
                operation="register_model",
                # A caller key may have been used before (a re-run pipeline step): without the
                # server's index, look it up first. A fresh key cannot exist yet.
                lookup_first=idempotency_key is not None and not self.key_index,
                replay=False,
            )
            outcome = "deduplicated" if result.deduplicated else "success"
        except MlflowUnavailableError as exc:
            if self.outbox is None:
                outcome = "short_circuited" if isinstance(exc, CircuitOpenError) else "unavailable"
                raise
            self._spool(reg, exc.cause)
            outcome = "spooled"
            return Registration(status="pending", name=name, idempotency_key=key, reason=exc.cause)
        finally:
            self.metrics.calls.labels(operation="register_model", outcome=outcome).inc()
            self.metrics.latency.labels(operation="register_model").observe(
                time.monotonic() - start
            )
        if not self._drain_checked:
            self._drain_checked = True
            self._kick_drain_if_pending()  # rows left by an earlier process
        return result

    def find_version(self, name: str, idempotency_key: str) -> ModelVersion | None:
        """The version of *name* registered under *idempotency_key*, if any (with retries).

        Without the server's index this also converges duplicates (keeps the lowest version).
        """
        return self.resilience.call(
            "find_version", lambda _attempt: self._find_by_key(name, idempotency_key)
        )

    def list_versions(self, name: str) -> list[ModelVersion]:
        """All versions of registered model *name* (with retries)."""

        def search(_attempt: int) -> list[ModelVersion]:
            return list(self.client.search_model_versions(f"name = '{_quote(name)}'"))

        return self.resilience.call("list_versions", search)

    def flush(self, *, limit: int | None = None, blocking: bool = True) -> FlushReport:
        """Replay this registry's spooled registrations, oldest first, exactly once each.

        Only rows of this tracking URI *and* registry URI are replayed. Each replay first looks
        the key up, so a version created by an earlier attempt is found rather than duplicated.
        A transient failure of one row does not block the others (the flush stops only when the
        breaker opens); such a row gets a *strike* when other rows went through in the same
        flush, and is marked failed after ``max_replay_strikes``. Refused rows are marked failed
        (``hokusai-outbox requeue`` puts them back). An authentication or permission error stops
        the flush and leaves every row pending. ``blocking=False`` returns at once if another
        flush holds the outbox lock.
        """
        if self.outbox is None:
            return FlushReport()
        registered: list[Registration] = []
        failed: list[tuple[str, str]] = []
        stopped_by: str | None = None
        flaky: list[PendingRegistration] = []
        with self.outbox.replay_lock(blocking=blocking) as held:
            if not held:
                return FlushReport(
                    still_pending=self.outbox.depth(self.tracking_uri, self.registry_uri or ""),
                    stopped_by="locked",
                )
            pending = self.outbox.entries(
                "pending", tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or ""
            )
            if limit is not None:
                pending = pending[:limit]
            for row in pending:
                start = time.monotonic()
                outcome = "error"
                try:
                    result = self._register(
                        replace(row, tracking_uri=self.tracking_uri),
                        Deadline(self.retry_policy.deadline),
                        operation="replay",
                        # with the index a create that finds the key taken *is* the lookup
                        lookup_first=not self.key_index,
                        replay=True,
                    )
                    outcome = "deduplicated" if result.deduplicated else "success"
                except CircuitOpenError as exc:
                    outcome = "short_circuited"
                    stopped_by = exc.cause
                    break
                except MlflowUnavailableError as exc:
                    outcome = "unavailable"
                    self.outbox.record_attempt(row, error=str(exc))
                    flaky.append(row)
                    if self.breaker.state != "closed":
                        stopped_by = exc.cause
                        logger.warning("flush stopped: MLflow unavailable (%s)", exc.cause)
                        break
                    continue
                except (MlflowRequestError, AliasError, IdempotencyConflictError) as exc:
                    if is_auth_error(exc):
                        self.outbox.record_attempt(row, error=str(exc))
                        stopped_by = f"authentication/permission: {exc}"
                        logger.error("flush stopped, rows stay pending: %s", exc)
                        break
                    version = getattr(getattr(exc, "registration", None), "version", None)
                    self.outbox.mark_failed(row, error=str(exc), version=version)
                    failed.append((row.idempotency_key, str(exc)))
                    logger.error(
                        "replay of %s refused, marked failed: %s", row.idempotency_key, exc
                    )
                    continue
                finally:
                    self.metrics.calls.labels(operation="replay", outcome=outcome).inc()
                    self.metrics.latency.labels(operation="replay").observe(
                        time.monotonic() - start
                    )
                assert result.version is not None
                if result.aliases_pending:
                    self.outbox.record_attempt(row, error="aliases not set yet")
                    flaky.append(row)
                    continue
                self.outbox.mark_done(row, version=result.version)
                registered.append(result)
            if registered:  # MLflow was up: the rows that still failed are the problem
                for row in flaky:
                    strikes = self.outbox.record_attempt(row, error="strike", strike=True)
                    if strikes >= self.max_replay_strikes:
                        msg = f"gave up after {strikes} replays that failed while others worked"
                        self.outbox.mark_failed(row, error=f"{row.last_error or ''} ({msg})")
                        failed.append((row.idempotency_key, msg))
        return FlushReport(
            registered=registered,
            failed=failed,
            still_pending=self.outbox.depth(self.tracking_uri, self.registry_uri or ""),
            stopped_by=stopped_by,
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

    def _spool(self, reg: PendingRegistration, cause: str) -> None:
        assert self.outbox is not None
        self.outbox.add(reg)
        logger.warning(
            "MLflow at %s unavailable (%s): registration of %r spooled to %s as %s",
            redact_uri(self.tracking_uri),
            cause,
            reg.name,
            self.outbox.path,
            reg.idempotency_key,
        )
        if self._drainer is not None:
            self._drainer.kick()

    def _kick_drain_if_pending(self) -> None:
        if self._drainer is not None and self.outbox is not None:
            try:
                if self.outbox.depth(self.tracking_uri, self.registry_uri or "") > 0:
                    self._drainer.kick()
            except Exception:
                logger.exception("cannot read outbox %s", self.outbox.path)

    def _versions_with_key(self, name: str, key: str) -> list[ModelVersion]:
        found = self.client.search_model_versions(
            f"name = '{_quote(name)}' AND tags.`{IDEMPOTENCY_TAG}` = '{_quote(key)}'"
        )
        return sorted((mv for mv in found if mv.name == name), key=lambda mv: int(mv.version))

    def _find_by_key(self, name: str, key: str) -> ModelVersion | None:
        matches = self._versions_with_key(name, key)
        if not matches:
            return None
        if len(matches) > 1:
            self._converge(matches)
        return matches[0]

    def _converge(self, matches: list[ModelVersion]) -> None:
        """Several versions carry one key (no index, concurrent writers): keep the lowest."""
        from mlflow.exceptions import MlflowException

        keep, extra = matches[0], matches[1:]
        for mv in extra:
            try:
                self.client.delete_model_version(mv.name, mv.version)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            logger.warning(
                "version %s of %r duplicated key %s (no unique index on the server): deleted, "
                "keeping version %s",
                mv.version,
                mv.name,
                keep.tags.get(IDEMPOTENCY_TAG),
                keep.version,
            )

    def _resolve_source(self, reg: PendingRegistration) -> tuple[str, str | None, str | None]:
        """(source, run_id, model_id) to send, resolving ``run_id=`` like mlflow.register_model.

        MLflow 3 keeps a model logged with ``log_model(name=...)`` as a *logged model* of the
        run (``models:/m-...``), not under the run's artifacts; registering
        ``runs:/<run>/model`` then points at nothing. Old-style run artifacts (an ``MLmodel``
        under ``<run artifacts>/<artifact_path>``) are still found.
        """
        if reg.source is not None:
            return reg.source, reg.run_id, _logged_model_id(reg.source)
        assert reg.run_id is not None
        run = self.client.get_run(reg.run_id)
        candidates: list[Any] = []
        token: str | None = None
        for _page in range(20):
            page = self.client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"name = '{_quote(reg.artifact_path)}'",
                page_token=token,
            )
            candidates.extend(m for m in page if m.source_run_id == reg.run_id)
            token = page.token
            if not token:
                break
        if candidates:
            if len(candidates) > 1 and run.outputs is not None:
                steps = {o.model_id: o.step for o in run.outputs.model_outputs}
                chosen = max(candidates, key=lambda m: steps.get(m.model_id, -1))
            else:
                chosen = max(candidates, key=lambda m: m.creation_timestamp or 0)
            return f"models:/{chosen.model_id}", reg.run_id, chosen.model_id
        artifacts = self.client.list_artifacts(reg.run_id, reg.artifact_path)
        if any(a.path.rsplit("/", 1)[-1] == "MLmodel" for a in artifacts):
            base = str(run.info.artifact_uri).rstrip("/")
            return f"{base}/{reg.artifact_path}", reg.run_id, None
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        raise MlflowException(
            f"run {reg.run_id} has no logged model named {reg.artifact_path!r} and no MLmodel "
            f"under its artifacts at {reg.artifact_path!r}; pass artifact_path= (the name= given "
            "to log_model) or source='models:/m-...'",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )

    def _create_version(
        self, reg: PendingRegistration, source: str, run_id: str | None, model_id: str | None
    ) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        tags = {
            **reg.tags,
            IDEMPOTENCY_TAG: reg.idempotency_key,
            REQUESTED_AT_TAG: f"{reg.created_at:.6f}",
        }

        def create() -> ModelVersion:
            kwargs: dict[str, Any] = {}
            if model_id is not None:
                kwargs["model_id"] = model_id
            return self.client.create_model_version(
                reg.name,
                source,
                run_id=run_id,
                tags=tags,
                description=reg.description,
                await_creation_for=0,
                **kwargs,
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
                # It exists now: a concurrent caller created it after our create failed. Try
                # again; if the run is what is missing, this raises that error.
                return create()
        try:
            self.client.create_registered_model(reg.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        return create()

    def _register(
        self,
        reg: PendingRegistration,
        deadline: Deadline,
        *,
        operation: str,
        lookup_first: bool,
        replay: bool,
    ) -> Registration:
        from mlflow.exceptions import MlflowException

        deduplicated = False
        resolved: list[tuple[str, str | None, str | None]] = []

        def attempt(n: int) -> ModelVersion:
            nonlocal deduplicated
            # A first attempt of a fresh key cannot have a predecessor; a retry, a replay or a
            # caller key may (lost response, concurrent caller, re-run pipeline).
            if lookup_first or n > 1:
                existing = self._find_by_key(reg.name, reg.idempotency_key)
                if existing is not None:
                    deduplicated = True
                    return existing
            if not resolved:
                resolved.append(self._resolve_source(reg))
            source, run_id, model_id = resolved[0]
            for second_try in (False, True):
                try:
                    mv = self._create_version(reg, source, run_id, model_id)
                    break
                except MlflowException as exc:
                    if not _server_error(exc):
                        raise
                    # With the index a taken key makes MLflow answer 500 ("Model Version
                    # creation error", after its own 3 tries). Return that version. Not found:
                    # version-number contention between concurrent creates, or a real server
                    # error -- one more create tells them apart.
                    existing = self._find_by_key(reg.name, reg.idempotency_key)
                    if existing is not None:
                        deduplicated = True
                        return existing
                    if second_try:
                        raise
            if not self.key_index and (lookup_first or n > 1 or replay):
                # Without the index another writer may have created the same key meanwhile:
                # converge on the lowest version (every writer ends up returning it).
                matches = self._versions_with_key(reg.name, reg.idempotency_key)
                if len(matches) > 1:
                    self._converge(matches)
                    if str(matches[0].version) != str(mv.version):
                        deduplicated = True
                        return matches[0]
            return mv

        mv = self.resilience.call(operation, attempt, deadline=deadline, record=False)
        version = str(mv.version)
        if deduplicated:
            logger.info(
                "%s: version %s of %r already registered under key %s",
                operation,
                version,
                reg.name,
                reg.idempotency_key,
            )
            src = reg.source
            if src is not None and not src.startswith("models:/") and mv.source != src:
                raise IdempotencyConflictError(
                    f"idempotency key {reg.idempotency_key!r} is already version {version} of "
                    f"{reg.name!r} with source {mv.source!r}, not {src!r}; use a new key for a "
                    "new registration"
                )
        receipt = Registration(
            status="registered",
            name=reg.name,
            idempotency_key=reg.idempotency_key,
            version=version,
            deduplicated=deduplicated,
            source=mv.source,
            run_id=mv.run_id or None,
            model_id=getattr(mv, "model_id", None) or _logged_model_id(mv.source),
        )
        left = self._apply_aliases(reg, receipt, deadline, check_newer=deduplicated or replay)
        if left:
            receipt = replace(receipt, aliases_pending=left)
            if not replay:
                if self.outbox is None:
                    raise AliasError(
                        f"version {version} of {reg.name!r} was registered but MLflow became "
                        f"unavailable before aliases {list(left)} were set; retry with "
                        f"idempotency_key={reg.idempotency_key!r}",
                        registration=receipt,
                        alias=left[0],
                    )
                self._spool(reg, "aliases not set yet")
        return receipt

    def _apply_aliases(
        self,
        reg: PendingRegistration,
        receipt: Registration,
        deadline: Deadline,
        *,
        check_newer: bool,
    ) -> tuple[str, ...]:
        """Point each alias at the version, never moving it to an older one.

        Returns the aliases left unset because MLflow became unavailable (or the deadline ran
        out); a refused alias raises :class:`AliasError` carrying the receipt.
        """
        from mlflow.exceptions import MlflowException

        version = receipt.version
        assert version is not None
        for i, alias in enumerate(reg.aliases):

            def set_alias(_attempt: int, alias: str = alias) -> str:
                if check_newer:
                    try:
                        current = self.client.get_model_version_by_alias(reg.name, alias)
                    except MlflowException as exc:
                        if exc.error_code not in (
                            "RESOURCE_DOES_NOT_EXIST",
                            "INVALID_PARAMETER_VALUE",
                        ):
                            raise
                    else:
                        if str(current.version) == version or _requested_at(current) > (
                            reg.created_at or 0.0
                        ):
                            return str(current.version)  # never backwards
                self.client.set_registered_model_alias(reg.name, alias, version)
                return version

            try:
                now = self.resilience.call("set_alias", set_alias, deadline=deadline, record=False)
            except MlflowUnavailableError:
                return tuple(reg.aliases[i:])
            except MlflowRequestError as exc:
                raise AliasError(
                    f"version {version} of {reg.name!r} was registered (key "
                    f"{reg.idempotency_key!r}) but alias {alias!r} was refused: {exc}",
                    registration=receipt,
                    alias=alias,
                ) from exc
            if now != version:
                logger.info(
                    "alias %r of %r stays on newer version %s (not moved back to %s)",
                    alias,
                    reg.name,
                    now,
                    version,
                )
        return ()
