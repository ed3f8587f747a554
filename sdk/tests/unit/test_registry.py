"""ModelRegistry logic against an in-memory client (the real server is in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from hokusai.breaker import CircuitBreaker
from hokusai.cli import main as cli_main
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry
from hokusai.errors import MlflowRequestError, MlflowUnavailableError
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy

from .fakes import FakeClient, connection_refused

URI = "http://127.0.0.1:5999"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0, deadline=5)


def make(
    tmp_path: Path,
    metrics: SdkMetrics,
    client: FakeClient,
    *,
    spool: bool = True,
    breaker: CircuitBreaker | None = None,
    **kw: object,
) -> ModelRegistry:
    kw.setdefault("auto_drain", False)
    return ModelRegistry(  # type: ignore[misc]
        URI,
        client=client,  # type: ignore[arg-type]
        metrics=metrics,
        retry_policy=FAST,
        breaker=breaker or CircuitBreaker("t", failure_threshold=50),
        outbox_path=tmp_path / "o.sqlite3",
        spool=spool,
        **kw,
    )


def test_healthy_path_is_a_single_request(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"})
    r = make(tmp_path, metrics, client).register_model("m", "s3://b/1", aliases=["champion"])
    assert (r.status, r.version, r.deduplicated) == ("registered", "1", False)
    assert [c[0] for c in client.calls] == ["create_model_version", "set_registered_model_alias"]
    assert client.versions[0].tags[IDEMPOTENCY_TAG] == r.idempotency_key


def test_missing_registered_model_is_created(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient()
    r = make(tmp_path, metrics, client).register_model("new", "s3://b/1")
    assert r.version == "1" and client.models == {"new"}


def test_logged_model_uri_is_registered_with_its_model_id(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"})
    r = make(tmp_path, metrics, client).register_model("m", "models:/m-0123abcd")
    assert client.versions[0].model_id == "m-0123abcd"
    assert (r.source, r.model_id) == ("models:/m-0123abcd", "m-0123abcd")


def test_lost_response_retry_returns_the_existing_version(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"})
    lost = [True]

    def lose_first_response(phase: str) -> None:
        if phase == "after" and lost.pop() if lost else False:
            raise MlflowException("API request failed") from ConnectionResetError("reset")

    client.faults["create_model_version"] = lose_first_response
    r = make(tmp_path, metrics, client).register_model("m", "s3://b/1")
    assert (r.status, r.version, r.deduplicated) == ("registered", "1", True)
    assert len(client.versions) == 1
    assert [c[0] for c in client.calls] == ["create_model_version", "search_model_versions"]


def test_caller_key_is_looked_up_first(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"})
    reg = make(tmp_path, metrics, client)
    a = reg.register_model("m", "s3://b/1", idempotency_key="pipeline-run-42")
    b = reg.register_model("m", "s3://b/1", idempotency_key="pipeline-run-42")
    assert a.version == b.version == "1" and b.deduplicated
    assert len(client.versions) == 1


def test_unavailable_registration_is_spooled_then_flushed_once(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    receipt = reg.register_model("m", "s3://b/1", tags={"team": "ml"})
    assert receipt.pending and receipt.version is None
    assert receipt.reason is not None and receipt.reason.startswith("connection error")
    assert reg.outbox is not None and reg.outbox.depth() == 1
    assert (
        metrics.registry.get_sample_value(
            "hokusai_sdk_outbox_depth", {"outbox": str(tmp_path / "o.sqlite3")}
        )
        == 1
    )
    del client.faults["create_model_version"]
    report = reg.flush()
    assert [r.idempotency_key for r in report.registered] == [receipt.idempotency_key]
    assert report.still_pending == 0 and reg.outbox.depth() == 0
    assert reg.flush().registered == []  # nothing replayed twice
    assert len(client.versions) == 1 and client.versions[0].tags["team"] == "ml"


def test_crash_between_commit_and_mark_done_does_not_duplicate(
    tmp_path: Path, metrics: SdkMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    receipt = reg.register_model("m", "s3://b/1")
    del client.faults["create_model_version"]
    assert reg.outbox is not None

    def crash(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt("killed mid-replay")

    with monkeypatch.context() as m:
        m.setattr(reg.outbox, "mark_done", crash)
        with pytest.raises(KeyboardInterrupt):
            reg.flush()
    assert len(client.versions) == 1 and reg.outbox.depth() == 1
    report = reg.flush()
    assert report.registered[0].deduplicated
    assert report.registered[0].idempotency_key == receipt.idempotency_key
    assert len(client.versions) == 1 and reg.outbox.depth() == 0


def test_validation_error_is_raised_not_spooled(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"})

    def invalid(phase: str) -> None:
        from mlflow.exceptions import RestException

        raise RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad source"})

    client.faults["create_model_version"] = invalid
    reg = make(tmp_path, metrics, client)
    with pytest.raises(MlflowRequestError, match="bad source"):
        reg.register_model("m", "/etc/passwd")
    assert reg.outbox is not None and reg.outbox.depth() == 0


def test_without_spool_unavailability_raises(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    with pytest.raises(MlflowUnavailableError):
        make(tmp_path, metrics, client, spool=False).register_model("m", "s3://b/1")


def test_open_breaker_spools_without_calling(tmp_path: Path, metrics: SdkMetrics) -> None:
    breaker = CircuitBreaker("t", failure_threshold=1, reset_timeout=60)
    breaker.record_failure()
    client = FakeClient(models={"m"})
    r = make(tmp_path, metrics, client, breaker=breaker).register_model("m", "s3://b/1")
    assert r.pending and r.reason == "circuit open" and client.calls == []


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"name": " ", "source": "s3://x"}, ValueError, "needs a model name"),
        ({"name": "m"}, ValueError, "or run_id="),
        ({"name": "m", "source": "s", "aliases": ["latest"]}, ValueError, "refused by MLflow"),
        ({"name": "m", "source": "s", "aliases": ["v3"]}, ValueError, "reserved"),
        ({"name": "m", "source": "s", "aliases": "champion"}, TypeError, "list of names"),
        ({"name": "m", "source": "s", "idempotency_key": "has space"}, ValueError, "must match"),
        ({"name": "m", "source": "s", "tags": {IDEMPOTENCY_TAG: "x"}}, ValueError, "reserved"),
        ({"name": "m", "source": "s", "tags": {"a": 1}}, TypeError, "str -> str"),
    ],
)
def test_argument_validation(
    tmp_path: Path, metrics: SdkMetrics, kwargs: dict[str, object], exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        make(tmp_path, metrics, FakeClient()).register_model(**kwargs)  # type: ignore[arg-type]


def test_health_probe_touches_the_database_endpoints(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient()
    reg = make(tmp_path, metrics, client)
    h = reg.health()
    assert h.healthy and h.error is None and h.outbox_depth == 0 and h.breaker_state == "closed"
    assert [c[0] for c in client.calls] == ["search_experiments", "search_registered_models"]
    client.faults["search_experiments"] = connection_refused
    h = reg.health()
    assert not h.healthy and h.error is not None and "MlflowException" in h.error


def test_no_tracking_uri_is_refused(metrics: SdkMetrics) -> None:
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        ModelRegistry(metrics=metrics)


def test_cli_status(
    tmp_path: Path, metrics: SdkMetrics, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    receipt = make(tmp_path, metrics, client).register_model("m", "s3://b/1")
    rc = cli_main(["--path", str(tmp_path / "o.sqlite3"), "status"])
    out = capsys.readouterr().out
    assert rc == 1 and "pending=1" in out and receipt.idempotency_key in out
    assert cli_main(["--path", str(tmp_path / "o.sqlite3"), "status", "--json"]) == 1
    assert '"pending": 1' in capsys.readouterr().out


def test_console_script_is_installed(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "hokusai-outbox"
    done = subprocess.run(
        [str(script), "--path", str(tmp_path / "o.sqlite3"), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "failed=0 pending=0" in done.stdout
