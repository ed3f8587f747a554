"""Retries, deadline and circuit breaking around MLflow client calls.

Layering rule: the SDK owns retries. MLflow's own HTTP retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
7 by default, ~4 minutes with backoff) are turned down to ``RetryPolicy.mlflow_http_retries``
(0 by default) and ``MLFLOW_HTTP_REQUEST_TIMEOUT`` to ``RetryPolicy.attempt_timeout`` so that the
total number of HTTP attempts is ``max_attempts`` -- not ``max_attempts * 8``. MLflow reads those
variables from the process environment on every request, so they are process-wide; the SDK only
sets a variable that the user has not set, and logs a warning when a user setting makes the layers
multiply.
"""

from __future__ import annotations

import logging
import math
import os
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
    stop_before_delay,
    wait_random_exponential,
)

from hokusai.breaker import CircuitBreaker
from hokusai.errors import CircuitOpenError, MlflowRequestError, MlflowUnavailableError
from hokusai.metrics import SdkMetrics, redact_uri
from hokusai.transient import classify

__all__ = ["Resilience", "RetryPolicy", "configure_mlflow_http"]

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
    * ``deadline``: seconds per call, backoff included; no new attempt starts after it (an attempt
      in flight can overrun it by at most ``attempt_timeout``);
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
    """Point MLflow's HTTP retry/timeout variables at *policy* unless the user set them."""
    wanted = {
        _MAX_RETRIES_VAR: str(policy.mlflow_http_retries),
        _TIMEOUT_VAR: str(max(1, math.ceil(policy.attempt_timeout))),
    }
    with _env_lock:
        for var, value in wanted.items():
            current = os.environ.get(var)
            if current is None or _owned_env.get(var) == current:
                os.environ[var] = value
                _owned_env[var] = value
            elif var == _MAX_RETRIES_VAR and current != value:
                logger.warning(
                    "%s=%s is set in the environment: MLflow will retry each of the SDK's %d "
                    "attempts itself (up to %d HTTP requests per call); unset it or set it to %s",
                    var,
                    current,
                    policy.max_attempts,
                    policy.max_attempts * (1 + int(current or 0)),
                    value,
                )


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

    def call(self, operation: str, fn: Callable[[int], T]) -> T:
        start = time.monotonic()
        try:
            result = self._call(operation, fn)
        except CircuitOpenError:
            self.metrics.calls.labels(operation=operation, outcome="short_circuited").inc()
            raise
        except MlflowUnavailableError:
            self.metrics.calls.labels(operation=operation, outcome="unavailable").inc()
            raise
        except BaseException:
            self.metrics.calls.labels(operation=operation, outcome="error").inc()
            raise
        finally:
            self.metrics.latency.labels(operation=operation).observe(time.monotonic() - start)
        self.metrics.calls.labels(operation=operation, outcome="success").inc()
        return result

    def _call(self, operation: str, fn: Callable[[int], T]) -> T:
        uri = redact_uri(self.tracking_uri)
        policy = self.policy

        def one_attempt(attempt: int) -> T:
            if not self.breaker.allow():
                raise CircuitOpenError(
                    f"{operation}: circuit breaker for {uri} is open (MLflow failed repeatedly); "
                    f"next probe in {self.breaker.seconds_until_probe():.1f}s",
                    tracking_uri=self.tracking_uri,
                    cause="circuit open",
                    attempts=attempt - 1,
                )
            try:
                value = fn(attempt)
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
            stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.deadline),
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
                f"deadline={policy.deadline}s",
                tracking_uri=self.tracking_uri,
                cause=cause,
                attempts=attempts,
            ) from exc
        raise AssertionError("unreachable: tenacity returned without result")  # pragma: no cover
