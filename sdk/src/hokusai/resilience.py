"""Retries, deadline and circuit breaking around MLflow client calls.

Layering rule: the SDK owns retries. MLflow's own HTTP retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
7 by default, ~4 minutes with backoff) are turned down to ``RetryPolicy.mlflow_http_retries``
(0 by default) so that the total number of HTTP attempts is ``max_attempts`` -- not
``max_attempts * 8`` -- and so that urllib3 never re-sends a ``create_model_version`` POST behind
the SDK's back. MLflow reads the variable from the process environment on every request, so the
setting is process-wide; a different value already in the environment is *replaced* (with a
warning saying so). ``MLFLOW_HTTP_REQUEST_TIMEOUT`` is set to ``RetryPolicy.attempt_timeout``
unless the user set it.

Time bounds are enforced, not hoped for: every public call gets one :class:`Deadline`; each HTTP
attempt runs in a helper thread and the caller stops waiting when the deadline (or
``attempt_timeout``) is reached, whatever the socket is doing.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from hokusai.breaker import CircuitBreaker
from hokusai.errors import CircuitOpenError, MlflowRequestError, MlflowUnavailableError
from hokusai.metrics import SdkMetrics, redact_uri
from hokusai.transient import classify

__all__ = ["Deadline", "DeadlineExceeded", "Resilience", "RetryPolicy", "configure_mlflow_http"]

T = TypeVar("T")
logger = logging.getLogger("hokusai.resilience")

_MAX_RETRIES_VAR = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_TIMEOUT_VAR = "MLFLOW_HTTP_REQUEST_TIMEOUT"
_owned_env: dict[str, str] = {}
_env_lock = threading.Lock()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one SDK call tries before giving up.

    * ``max_attempts``: attempts per call, the first one included;
    * ``deadline``: seconds per public call (``register_model``: lookups, model creation and
      aliases together), backoff included; enforced: the call returns or raises by then;
    * ``initial_backoff`` / ``max_backoff``: full-jitter exponential backoff bounds, seconds;
    * ``attempt_timeout``: HTTP timeout of one attempt (``MLFLOW_HTTP_REQUEST_TIMEOUT``);
    * ``mlflow_http_retries``: retries MLflow itself may add per attempt (keep 0).

    >>> RetryPolicy(max_attempts=3, deadline=5.0).max_attempts
    3
    """

    max_attempts: int = 4
    deadline: float = 30.0
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    attempt_timeout: float = 10.0
    mlflow_http_retries: int = 0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy(max_attempts=...) must be >= 1, e.g. max_attempts=4")
        if self.deadline <= 0 or self.attempt_timeout <= 0:
            raise ValueError("RetryPolicy deadline and attempt_timeout must be > 0 seconds")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("RetryPolicy needs 0 <= initial_backoff <= max_backoff")
        if self.mlflow_http_retries < 0:
            raise ValueError("RetryPolicy(mlflow_http_retries=...) must be >= 0 (0 recommended)")


def configure_mlflow_http(policy: RetryPolicy) -> None:
    """Point MLflow's HTTP retry variable at *policy*, and its timeout unless the user set it.

    A user value of ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` is replaced (and logged): urllib3 would
    otherwise re-send a model-version create the SDK believes it sent once.
    """
    retries = str(policy.mlflow_http_retries)
    timeout = str(max(1, math.ceil(policy.attempt_timeout)))
    with _env_lock:
        current = os.environ.get(_MAX_RETRIES_VAR)
        if (
            current is not None
            and current != retries
            and _owned_env.get(_MAX_RETRIES_VAR) != current
        ):
            logger.warning(
                "%s=%s was set in the environment; the SDK replaces it with %s: MLflow's own "
                "retries would re-send requests the SDK already retries (up to %d HTTP requests "
                "per call) and could re-send a model-version create. The setting is process-wide.",
                _MAX_RETRIES_VAR,
                current,
                retries,
                policy.max_attempts * (1 + int(current or 0)),
            )
        os.environ[_MAX_RETRIES_VAR] = retries
        _owned_env[_MAX_RETRIES_VAR] = retries
        current = os.environ.get(_TIMEOUT_VAR)
        if current is None or _owned_env.get(_TIMEOUT_VAR) == current:
            os.environ[_TIMEOUT_VAR] = timeout
            _owned_env[_TIMEOUT_VAR] = timeout


class DeadlineExceeded(TimeoutError):
    """The call's overall deadline passed (classified as a transient timeout)."""


class Deadline:
    """An absolute point in time shared by every step of one public call.

    >>> d = Deadline(5.0); 4.0 < d.remaining() <= 5.0
    True
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return self.at - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0


class _Workers:
    """Daemon threads that run HTTP attempts, reused across calls (no thread start per request).

    Daemon, so an abandoned attempt never holds up interpreter exit; the pool grows when every
    worker is busy (abandoned attempts end at the latest with their socket timeout).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle == 0:
                threading.Thread(target=self._work, name="hokusai-attempt", daemon=True).start()
            else:
                self._idle -= 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            job()
            with self._lock:
                self._idle += 1


_workers = _Workers()


def _reset_workers_after_fork() -> None:
    # a forked child has none of the parent's threads: start from an empty pool
    global _workers  # the pool is process-wide by design (threads are per process)
    _workers = _Workers()


os.register_at_fork(after_in_child=_reset_workers_after_fork)


def _run_bounded(fn: Callable[[int], T], attempt: int, timeout: float) -> T:
    """``fn(attempt)`` in a worker thread; give up waiting after *timeout* seconds.

    The abandoned request finishes (or times out on its socket) in the background; the caller
    is never held longer than *timeout*. A create that commits after being abandoned is what the
    idempotency key (and the server's unique index) is there for.
    """
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn(attempt)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    _workers.submit(run)
    if not done.wait(max(0.0, timeout)):
        raise DeadlineExceeded(f"attempt {attempt} still running after {timeout:.2f}s: abandoned")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class _StopAt(stop_base):
    """tenacity stop: no retry whose backoff would end past *deadline*."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline.remaining() - (retry_state.upcoming_sleep or 0.0) <= 0


class Resilience:
    """Runs MLflow client calls with retries, a total deadline and a circuit breaker.

    ``call(operation, fn)`` invokes ``fn(attempt)`` (attempt numbers start at 1) and returns its
    result. Transient failures (see :mod:`hokusai.transient`) are retried with backoff until
    ``policy.max_attempts`` or ``policy.deadline``, then raised as
    :class:`~hokusai.errors.MlflowUnavailableError`; any other MLflow failure is raised at once as
    :class:`~hokusai.errors.MlflowRequestError`. While the breaker is open the call fails fast
    with :class:`~hokusai.errors.CircuitOpenError`.

    >>> from prometheus_client import CollectorRegistry
    >>> from hokusai.breaker import CircuitBreaker
    >>> from hokusai.metrics import SdkMetrics
    >>> r = Resilience("http://127.0.0.1:1", policy=RetryPolicy(),
    ...                breaker=CircuitBreaker("x"), metrics=SdkMetrics(CollectorRegistry()))
    >>> r.call("demo", lambda attempt: attempt * 10)
    10
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        metrics: SdkMetrics,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.policy = policy
        self.breaker = breaker
        self.metrics = metrics
        self._sleep = sleep
        # one gauge updater per (metrics registry, URI), however many clients share the breaker
        breaker.add_listener(self._on_state_change, key=(id(metrics.registry), tracking_uri))

    def _on_state_change(self, name: str, state: str) -> None:
        self.metrics.set_circuit_state(self.tracking_uri, state)
        if state != "closed":
            logger.warning("circuit breaker for %s is now %s", redact_uri(name), state)
        else:
            logger.info("circuit breaker for %s is closed again", redact_uri(name))

    def call(
        self,
        operation: str,
        fn: Callable[[int], T],
        *,
        deadline: Deadline | None = None,
        record: bool = True,
    ) -> T:
        """Run ``fn(attempt)`` with retries until it succeeds or *deadline* passes.

        *deadline* is shared by the steps of one public call (default: a fresh
        ``policy.deadline``). ``record=False`` leaves the outcome counter to the caller, which
        counts its public call once.
        """
        start = time.monotonic()
        outcome = "success"
        try:
            return self._call(operation, fn, deadline or Deadline(self.policy.deadline))
        except CircuitOpenError:
            outcome = "short_circuited"
            raise
        except MlflowUnavailableError:
            outcome = "unavailable"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            if record:
                self.metrics.calls.labels(operation=operation, outcome=outcome).inc()
                self.metrics.latency.labels(operation=operation).observe(time.monotonic() - start)

    def _call(self, operation: str, fn: Callable[[int], T], deadline: Deadline) -> T:
        uri = redact_uri(self.tracking_uri)
        policy = self.policy

        def one_attempt(attempt: int) -> T:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"{operation}: deadline of {deadline.seconds}s passed before attempt {attempt}"
                )
            if not self.breaker.allow():
                raise CircuitOpenError(
                    f"{operation}: circuit breaker for {uri} is open (MLflow failed repeatedly); "
                    f"next probe in {self.breaker.seconds_until_probe():.1f}s",
                    tracking_uri=self.tracking_uri,
                    cause="circuit open",
                    attempts=attempt - 1,
                )
            try:
                value = _run_bounded(fn, attempt, min(policy.attempt_timeout, remaining))
            except Exception as exc:
                if classify(exc) is None:
                    self.breaker.record_success()  # MLflow answered: it is up
                else:
                    self.breaker.record_failure()
                raise
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.record_success()
            return value

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            cause = classify(exc) if exc else "unknown"
            self.metrics.retries.labels(operation=operation, cause=str(cause)).inc()
            logger.warning(
                "%s against %s failed (attempt %d/%d, cause: %s); retrying in %.2fs",
                operation,
                uri,
                state.attempt_number,
                policy.max_attempts,
                cause,
                state.upcoming_sleep,
            )

        retrying = Retrying(
            retry=retry_if_exception(
                lambda e: not isinstance(e, CircuitOpenError) and classify(e) is not None
            ),
            stop=stop_after_attempt(policy.max_attempts) | _StopAt(deadline),
            wait=wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return one_attempt(attempts)
        except CircuitOpenError:
            raise
        except Exception as exc:
            cause = classify(exc)
            if cause is None:
                code = getattr(exc, "error_code", None)
                logger.error("%s against %s refused: %s", operation, uri, exc)
                raise MlflowRequestError(
                    f"{operation}: MLflow refused the request: {exc}",
                    error_code=code if isinstance(code, str) else None,
                ) from exc
            logger.error(
                "%s against %s gave up after %d attempt(s): %s", operation, uri, attempts, cause
            )
            raise MlflowUnavailableError(
                f"{operation}: MLflow at {uri} is unavailable ({cause}) after {attempts} "
                f"attempt(s); policy: max_attempts={policy.max_attempts}, "
                f"deadline={deadline.seconds}s",
                tracking_uri=self.tracking_uri,
                cause=cause,
                attempts=attempts,
            ) from exc
        raise AssertionError("unreachable: tenacity returned without result")  # pragma: no cover
