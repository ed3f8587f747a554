"""The readiness endpoint's logic (roles/mlflow/files/mlflow_ready.py): answers
from background results, a hung check counts as failed, stale results too."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "roles/mlflow/files/mlflow_ready.py"
spec = importlib.util.spec_from_file_location("mlflow_ready", SRC)
ready = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ready)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ok() -> str:
    return "fine"


def broken() -> str:
    raise ConnectionError("connection refused\nsecond line")


def test_not_ready_before_the_first_results() -> None:
    prober = ready.Prober({"database": ok}, clock=Clock())
    report = prober.report()
    assert report == {
        "ready": False,
        "checks": {"database": {"ok": False, "detail": "not checked yet", "ms": 0.0}},
    }


def test_ready_when_every_check_passed() -> None:
    prober = ready.Prober({"database": ok, "artifacts": ok}, clock=Clock())
    prober.run_once("database")
    prober.run_once("artifacts")
    report = prober.report()
    assert report["ready"] is True
    assert report["checks"]["database"]["detail"] == "fine"


def test_a_failed_check_reports_its_first_line() -> None:
    prober = ready.Prober({"database": broken, "artifacts": ok}, clock=Clock())
    prober.run_once("database")
    prober.run_once("artifacts")
    report = prober.report()
    assert report["ready"] is False
    assert report["checks"]["database"] == {
        "ok": False,
        "detail": "ConnectionError: connection refused",
        "ms": report["checks"]["database"]["ms"],
    }
    # The artifact pool does not care about the database.
    assert prober.report(["artifacts"])["ready"] is True


def test_a_hung_check_fails_while_it_runs_although_its_last_result_was_good() -> None:
    clock = Clock()
    release = threading.Event()
    calls = []

    def database() -> str:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return "fine"

    prober = ready.Prober({"database": database}, slow_after=1.5, clock=clock)
    prober.run_once("database")
    assert prober.report()["ready"] is True
    worker = threading.Thread(target=prober.run_once, args=("database",))
    worker.start()
    try:
        # Wait until the second run has started (running_since set).
        for _ in range(500):
            if prober.running_since["database"] is not None:
                break
            threading.Event().wait(0.01)
        clock.now += 1.0
        assert prober.report()["ready"] is True, "a check within slow_after keeps its last result"
        clock.now += 1.0
        report = prober.report()
        assert report["ready"] is False
        assert "running for 2.0 s" in report["checks"]["database"]["detail"]
    finally:
        release.set()
        worker.join()
    assert prober.report()["ready"] is True


def test_a_stale_result_fails() -> None:
    clock = Clock()
    prober = ready.Prober({"server": ok}, stale_after=10, clock=clock)
    prober.run_once("server")
    clock.now += 11
    report = prober.report()
    assert report["ready"] is False
    assert report["checks"]["server"]["detail"].startswith("last result is 11 s old")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", None),
        ("checks=artifacts,server", ["artifacts", "server"]),
        ("x=1&checks=server", ["server"]),
        ("checks=", None),
    ],
)
def test_parse_checks(query: str, expected: list[str] | None) -> None:
    assert ready.parse_checks(query, ready.CHECKS) == expected


def test_parse_checks_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown checks \\['disk'\\]"):
        ready.parse_checks("checks=server,disk", ready.CHECKS)


def test_agent_reply_ready_is_full_weight() -> None:
    prober = ready.Prober({"database": ok, "artifacts": broken, "server": ok}, clock=Clock())
    for name in prober.checks:
        prober.run_once(name)
    # The API pool asks about database and server only: the broken artifact store does not matter.
    assert ready.agent_reply("database,server\n", prober) == "100%\n"


def test_agent_reply_not_ready_is_weight_zero_with_the_reason() -> None:
    prober = ready.Prober({"database": ok, "artifacts": broken, "server": ok}, clock=Clock())
    for name in prober.checks:
        prober.run_once(name)
    assert ready.agent_reply("artifacts,server", prober) == (
        "0% #not ready: artifacts: ConnectionError: connection refused\n"
    )
    # Nothing sent: every check counts.
    assert ready.agent_reply("", prober).startswith("0% #not ready: artifacts")


def test_agent_reply_to_an_unknown_check_is_weight_zero() -> None:
    prober = ready.Prober({"server": ok}, clock=Clock())
    assert ready.agent_reply("disk", prober).startswith("0% #unknown checks ['disk']")


class StoreError(Exception):
    """Shaped like botocore's ClientError: the S3 error code in .response."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code}) when calling the PutObject operation")
        self.response = {"Error": {"Code": code}}


class FakeS3:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def put_object(self, **_: object) -> None:
        if self.error:
            raise self.error


@pytest.fixture
def artifact_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOKUSAI_ARTIFACTS_BUCKET", "mlflow-artifacts")
    monkeypatch.setenv("HOKUSAI_INSTANCE_NAME", "mlflow1")


@pytest.mark.usefixtures("artifact_env")
def test_write_quorum_refusal_told_apart_from_other_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ready, "_S3", FakeS3(StoreError("SlowDownWrite")))
    with pytest.raises(ready.WritesRefused, match="write quorum lost"):
        ready.check_artifacts()
    for other in (StoreError("SlowDownRead"), StoreError("AccessDenied"), TimeoutError("read timeout")):
        monkeypatch.setattr(ready, "_S3", FakeS3(other))
        with pytest.raises(type(other)):
            ready.check_artifacts()


def refusing() -> str:
    raise ready.WritesRefused("the artifact store refuses writes (MinIO write quorum lost): SlowDownWrite")


def test_writes_refused_only_on_a_fresh_refusal() -> None:
    clock = Clock()
    outcome = {"check": refusing}
    prober = ready.Prober({"artifacts": lambda: outcome["check"]()}, clock=clock)
    assert prober.writes_refused() is None, "no result yet: uploads go through"
    prober.run_once("artifacts")
    assert "write quorum lost" in prober.writes_refused()
    assert prober.report(["artifacts"])["ready"] is False
    clock.now += 6
    assert prober.writes_refused() is None, "an old refusal (stuck probe) does not keep uploads refused"
    prober.run_once("artifacts")
    assert prober.writes_refused() is not None
    outcome["check"] = broken
    prober.run_once("artifacts")
    assert prober.writes_refused() is None, "another failure (e.g. a timeout) lets MinIO decide"
    outcome["check"] = ok
    prober.run_once("artifacts")
    assert prober.writes_refused() is None
