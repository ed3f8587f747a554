from __future__ import annotations

import logging

import pytest
from mlflow.exceptions import MlflowException, RestException

from hokusai.breaker import CircuitBreaker
from hokusai.errors import CircuitOpenError, MlflowRequestError, MlflowUnavailableError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import Resilience, RetryPolicy, configure_mlflow_http


def refused() -> MlflowException:
    exc = MlflowException("API request failed")
    exc.__cause__ = ConnectionRefusedError("refused")
    return exc


def make(
    metrics: SdkMetrics, breaker: CircuitBreaker, **policy: float
) -> tuple[Resilience, list[float]]:
    sleeps: list[float] = []
    r = Resilience(
        "http://127.0.0.1:5999",
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        breaker=breaker,
        metrics=metrics,
        sleep=sleeps.append,
    )
    return r, sleeps


def sample(metrics: SdkMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_transient_failures_are_retried_with_bounded_jittered_backoff(
    metrics: SdkMetrics, breaker: CircuitBreaker
) -> None:
    r, sleeps = make(metrics, breaker, max_attempts=4, initial_backoff=0.5, max_backoff=2)
    attempts: list[int] = []

    def fn(n: int) -> str:
        attempts.append(n)
        if n < 3:
            raise refused()
        return "ok"

    assert r.call("op", fn) == "ok"
    assert attempts == [1, 2, 3]
    assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)
    assert sample(metrics, "hokusai_sdk_calls_total", operation="op", outcome="success") == 1
    assert (
        sample(
            metrics,
            "hokusai_sdk_retries_total",
            operation="op",
            cause="connection error: ConnectionRefusedError",
        )
        == 2
    )
    assert breaker.state == "closed"


def test_validation_errors_are_never_retried(metrics: SdkMetrics, breaker: CircuitBreaker) -> None:
    r, sleeps = make(metrics, breaker)
    calls = []

    def fn(n: int) -> None:
        calls.append(n)
        raise RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad source"})

    with pytest.raises(MlflowRequestError, match="bad source") as info:
        r.call("op", fn)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert calls == [1] and sleeps == []
    assert sample(metrics, "hokusai_sdk_calls_total", operation="op", outcome="error") == 1


def test_exhausted_retries_raise_unavailable_with_cause(
    metrics: SdkMetrics, breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    r, _ = make(metrics, breaker, max_attempts=2, initial_backoff=0, max_backoff=0)
    with caplog.at_level(logging.WARNING), pytest.raises(MlflowUnavailableError) as info:
        r.call("register_model", lambda n: (_ for _ in ()).throw(refused()))
    assert info.value.attempts == 2
    assert info.value.cause.startswith("connection error")
    assert "ConnectionRefusedError" in caplog.text  # log lines name the cause
    assert (
        sample(
            metrics, "hokusai_sdk_calls_total", operation="register_model", outcome="unavailable"
        )
        == 1
    )


def test_deadline_bounds_the_whole_call(metrics: SdkMetrics) -> None:
    import time

    r = Resilience(
        "http://127.0.0.1:5999",
        policy=RetryPolicy(max_attempts=100, deadline=0.35, initial_backoff=0.01, max_backoff=0.02),
        breaker=CircuitBreaker("b", failure_threshold=1000),
        metrics=metrics,
    )
    calls: list[int] = []

    def slow_failure(n: int) -> None:
        calls.append(n)
        time.sleep(0.1)
        raise refused()

    start = time.monotonic()
    with pytest.raises(MlflowUnavailableError, match=r"deadline=0\.35s"):
        r.call("op", slow_failure)
    elapsed = time.monotonic() - start
    assert 2 <= len(calls) <= 4
    assert elapsed < 0.35 + 0.15  # the deadline is enforced (+ scheduling slack)


def test_breaker_opens_and_short_circuits(metrics: SdkMetrics) -> None:
    breaker = CircuitBreaker("b", failure_threshold=3, reset_timeout=60)
    r, _ = make(metrics, breaker, max_attempts=5, initial_backoff=0, max_backoff=0)
    calls: list[int] = []

    def fn(n: int) -> None:
        calls.append(n)
        raise refused()

    with pytest.raises(CircuitOpenError):
        r.call("op", fn)
    assert len(calls) == 3  # the 4th attempt met an open breaker
    with pytest.raises(CircuitOpenError, match=r"circuit breaker .* is open"):
        r.call("op", fn)
    assert len(calls) == 3
    assert sample(metrics, "hokusai_sdk_circuit_state", tracking_uri="http://127.0.0.1:5999") == 2
    assert (
        sample(metrics, "hokusai_sdk_calls_total", operation="op", outcome="short_circuited") == 2
    )


def test_validation_error_counts_as_reachable_for_the_breaker(metrics: SdkMetrics) -> None:
    breaker = CircuitBreaker("b", failure_threshold=2, reset_timeout=60)
    r, _ = make(metrics, breaker, max_attempts=1)
    with pytest.raises(MlflowUnavailableError):
        r.call("op", lambda n: (_ for _ in ()).throw(refused()))
    with pytest.raises(MlflowRequestError):
        r.call(
            "op",
            lambda n: (_ for _ in ()).throw(
                RestException({"error_code": "BAD_REQUEST", "message": "x"})
            ),
        )
    with pytest.raises(MlflowUnavailableError):
        r.call("op", lambda n: (_ for _ in ()).throw(refused()))
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline": 0}, "deadline"),
        ({"initial_backoff": 2, "max_backoff": 1}, "initial_backoff"),
        ({"mlflow_http_retries": -1}, "mlflow_http_retries"),
    ],
)
def test_policy_validation(kw: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kw)  # type: ignore[arg-type]


def test_mlflow_http_retries_are_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    configure_mlflow_http(RetryPolicy(attempt_timeout=7.5))
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 0
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 8


def test_user_retry_setting_is_replaced_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib3 would otherwise re-send a create POST behind the SDK's back (duplicates)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    with caplog.at_level(logging.WARNING):
        configure_mlflow_http(RetryPolicy(max_attempts=4))
    assert "up to 32 HTTP requests" in caplog.text and "replaces it with 0" in caplog.text
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


def test_latency_histogram_and_exposition(metrics: SdkMetrics, breaker: CircuitBreaker) -> None:
    from prometheus_client import generate_latest

    r, _ = make(metrics, breaker)
    r.call("op", lambda n: n)
    assert sample(metrics, "hokusai_sdk_call_duration_seconds_count", operation="op") == 1
    from hokusai.outbox import OutboxStats

    metrics.watch_outbox("/tmp/o", lambda: OutboxStats(3, 1, 12.5))
    text = generate_latest(metrics.registry).decode()
    for name in (
        "hokusai_sdk_calls_total",
        "hokusai_sdk_call_duration_seconds_bucket",
        "hokusai_sdk_retries_total",
        "hokusai_sdk_circuit_state",
        "hokusai_sdk_outbox_depth",
        "hokusai_sdk_outbox_failed",
        "hokusai_sdk_outbox_oldest_pending_age_seconds",
    ):
        assert name in text
    assert sample(metrics, "hokusai_sdk_outbox_depth", outbox="/tmp/o") == 3
    assert sample(metrics, "hokusai_sdk_outbox_oldest_pending_age_seconds", outbox="/tmp/o") == 12.5


def test_deadline_is_enforced_even_when_an_attempt_hangs(metrics: SdkMetrics) -> None:
    import threading
    import time

    release = threading.Event()
    r = Resilience(
        "http://127.0.0.1:5999",
        policy=RetryPolicy(max_attempts=5, deadline=0.5, attempt_timeout=60, initial_backoff=0),
        breaker=CircuitBreaker("b", failure_threshold=1000),
        metrics=metrics,
    )
    start = time.monotonic()
    with pytest.raises(MlflowUnavailableError, match="timeout"):
        r.call("op", lambda n: release.wait(30))  # a socket that never answers
    elapsed = time.monotonic() - start
    release.set()
    assert elapsed < 0.5 + 0.2, elapsed


def test_a_forked_child_gets_its_own_attempt_workers(metrics: SdkMetrics) -> None:
    import os
    import warnings

    r = Resilience(
        "http://127.0.0.1:5999",
        policy=RetryPolicy(deadline=5),
        breaker=CircuitBreaker("b"),
        metrics=metrics,
    )
    assert r.call("op", lambda n: n) == 1  # the parent's pool has an idle worker now
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a threaded process; forking is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: must not wait for a worker that was not forked
        try:
            os._exit(0 if r.call("op", lambda n: n + 1) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
