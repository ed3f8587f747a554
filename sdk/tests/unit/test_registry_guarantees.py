"""Aliases, outbox replay rules, outcome counting and the smaller defects of issue 15.

The races themselves run against real servers in tests/integration; these pin the logic.
"""

from __future__ import annotations

import importlib.metadata
import socket
import time
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from hokusai.breaker import CircuitBreaker
from hokusai.cli import main as cli_main
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry
from hokusai.errors import AliasError, IdempotencyConflictError
from hokusai.metrics import SdkMetrics
from hokusai.outbox import Outbox, PendingRegistration
from hokusai.resilience import RetryPolicy
from hokusai.tracking import ExperimentManager
from hokusai.transient import classify, is_auth_error

from .fakes import FakeClient, FakeVersion, connection_refused

URI = "http://127.0.0.1:5999"
FAST = RetryPolicy(max_attempts=2, initial_backoff=0, max_backoff=0, deadline=5)


def make(tmp_path: Path, metrics: SdkMetrics, client: FakeClient, **kw: object) -> ModelRegistry:
    kw.setdefault("auto_drain", False)
    kw.setdefault("breaker", CircuitBreaker("t", failure_threshold=50, reset_timeout=0))
    return ModelRegistry(  # type: ignore[misc]
        URI,
        client=client,  # type: ignore[arg-type]
        metrics=metrics,
        retry_policy=FAST,
        outbox_path=tmp_path / "o.sqlite3",
        **kw,
    )


def calls(metrics: SdkMetrics, operation: str) -> dict[str, float]:
    out = {}
    for outcome in (
        "success",
        "error",
        "unavailable",
        "short_circuited",
        "spooled",
        "deduplicated",
    ):
        v = metrics.registry.get_sample_value(
            "hokusai_sdk_calls_total", {"operation": operation, "outcome": outcome}
        )
        if v:
            out[outcome] = v
    return out


def test_replay_never_moves_an_alias_back(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    old = reg.register_model("m", "s3://b/old", aliases=["champion"])
    assert old.pending
    del client.faults["create_model_version"]
    new = reg.register_model("m", "s3://b/new", aliases=["champion"])
    assert new.version == "1" and client.aliases[("m", "champion")] == "1"
    (replayed,) = reg.flush().registered
    assert replayed.version == "2"
    assert client.aliases[("m", "champion")] == "1"  # the newer version keeps it


def test_alias_refused_after_create_reports_the_version(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"})

    def forbidden(phase: str) -> None:
        raise RestException({"error_code": "PERMISSION_DENIED", "message": "no alias for you"})

    client.faults["set_registered_model_alias"] = forbidden
    reg = make(tmp_path, metrics, client)
    with pytest.raises(AliasError, match="version 1 of 'm' was registered") as info:
        reg.register_model("m", "s3://b/1", aliases=["champion"], idempotency_key="run-1")
    assert info.value.registration.version == "1"  # type: ignore[attr-defined]
    del client.faults["set_registered_model_alias"]
    again = reg.register_model("m", "s3://b/1", aliases=["champion"], idempotency_key="run-1")
    assert (again.version, again.deduplicated, len(client.versions)) == ("1", True, 1)
    assert client.aliases[("m", "champion")] == "1"


def test_alias_unavailable_after_create_keeps_the_version_and_spools_the_alias(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"}, faults={"set_registered_model_alias": connection_refused})
    reg = make(tmp_path, metrics, client)
    r = reg.register_model("m", "s3://b/1", aliases=["champion"])
    assert (r.status, r.version, r.aliases_pending) == ("registered", "1", ("champion",))
    del client.faults["set_registered_model_alias"]
    (done,) = reg.flush().registered
    assert done.version == "1" and done.deduplicated and len(client.versions) == 1
    assert client.aliases[("m", "champion")] == "1"


def test_a_401_stops_the_flush_and_keeps_every_row(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    for i in range(3):
        assert reg.register_model("m", f"s3://b/{i}").pending

    def unauthenticated(phase: str) -> None:
        raise MlflowException("API request to endpoint /x failed with error code 401 != 200")

    client.faults["create_model_version"] = unauthenticated
    client.faults["search_model_versions"] = unauthenticated
    report = reg.flush()
    assert report.stopped_by is not None and report.stopped_by.startswith("authentication")
    assert report.failed == [] and reg.outbox is not None
    assert reg.outbox.counts() == {"pending": 3, "done": 0, "failed": 0}
    client.faults.clear()
    assert len(reg.flush().registered) == 3


def test_a_poisoned_row_does_not_block_and_is_failed_after_its_strikes(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client, max_replay_strikes=2)
    poisoned = reg.register_model("m", "s3://b/poison")
    others = [reg.register_model("m", f"s3://b/{i}") for i in range(2)]

    def poison_only(phase: str) -> None:
        if phase == "before" and client.calls[-1][1][1] == "s3://b/poison":
            raise MlflowException("API request failed") from ConnectionResetError("reset")

    client.faults["create_model_version"] = poison_only
    first = reg.flush()
    assert {r.idempotency_key for r in first.registered} == {o.idempotency_key for o in others}
    assert first.still_pending == 1 and first.failed == []
    assert reg.outbox is not None
    reg.outbox.add(  # a healthy row in the next flush too
        PendingRegistration.new(
            tracking_uri=URI, name="m", source="s3://b/ok", idempotency_key="ok"
        )
    )
    second = reg.flush()
    assert [k for k, _ in second.failed] == [poisoned.idempotency_key]
    assert reg.outbox.counts()["failed"] == 1 and reg.outbox.depth() == 0
    assert reg.outbox.requeue(poisoned.idempotency_key) == 1


def test_a_long_outage_gives_no_strikes(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client, max_replay_strikes=1)
    reg.register_model("m", "s3://b/1")
    client.faults["search_model_versions"] = connection_refused
    for _ in range(3):
        assert reg.flush().failed == []
    assert reg.outbox is not None and reg.outbox.depth() == 1


def test_key_reused_for_another_payload_is_refused_at_once(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    assert reg.register_model("m", "s3://b/1", idempotency_key="k").pending
    n = len(client.calls)
    with pytest.raises(IdempotencyConflictError):
        reg.register_model("m", "s3://b/2", idempotency_key="k")
    assert len(client.calls) == n  # refused before any request
    del client.faults["create_model_version"]
    reg.register_model("m", "s3://b/3", idempotency_key="live")
    with pytest.raises(IdempotencyConflictError, match="already version 1"):
        reg.register_model("m", "s3://b/4", idempotency_key="live")


def test_each_call_is_counted_once(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"})
    reg = make(tmp_path, metrics, client)
    reg.register_model("m", "s3://b/1", idempotency_key="k")
    reg.register_model("m", "s3://b/1", idempotency_key="k")
    client.faults["create_model_version"] = connection_refused
    reg.register_model("m", "s3://b/2")
    assert calls(metrics, "register_model") == {"success": 1, "deduplicated": 1, "spooled": 1}


def test_without_index_concurrent_duplicates_converge_to_the_lowest(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"})
    reg = make(tmp_path, metrics, client)

    def someone_else_first(phase: str) -> None:  # another writer commits the same key first
        if phase == "before" and not client.versions:
            client.versions.append(FakeVersion("m", "1", "s3://b/1", None, {IDEMPOTENCY_TAG: "k"}))
            client.created["m"] = 1

    client.faults["create_model_version"] = someone_else_first
    r = reg.register_model("m", "s3://b/1", idempotency_key="k")
    assert (r.version, r.deduplicated) == ("1", True)
    assert [v.version for v in client.versions] == ["1"]  # ours (2) was deleted
    assert ("delete_model_version", ("m", "2")) in client.calls


def test_with_index_a_caller_key_costs_one_request_and_a_conflict_is_a_lookup(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"})
    reg = make(tmp_path, metrics, client, key_index=True)
    first = reg.register_model("m", "s3://b/1", idempotency_key="k")
    assert [c[0] for c in client.calls] == ["create_model_version"]

    def unique_violation(phase: str) -> None:
        if phase == "before":
            raise RestException(
                {
                    "error_code": "INTERNAL_ERROR",
                    "message": "Model Version creation error (name=m). Giving up after 3 attempts.",
                }
            )

    client.faults["create_model_version"] = unique_violation
    again = reg.register_model("m", "s3://b/1", idempotency_key="k")
    assert (again.version, again.deduplicated) == (first.version, True)
    assert len(client.versions) == 1


def test_background_drain_registers_spooled_rows_without_a_call(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    breaker = CircuitBreaker("t", failure_threshold=1, reset_timeout=0.05, max_reset_timeout=0.2)
    reg = make(tmp_path, metrics, client, auto_drain=True, breaker=breaker)
    try:
        r = reg.register_model("m", "s3://b/1")
        assert r.pending and breaker.state == "open"
        time.sleep(0.3)  # the drain probes, still refused
        del client.faults["create_model_version"]
        deadline = time.monotonic() + 5
        while reg.outbox is not None and reg.outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reg.outbox is not None and reg.outbox.depth() == 0
        assert breaker.state == "closed" and len(client.versions) == 1
    finally:
        reg.close()


def test_start_run_keeps_the_callers_exception(metrics: SdkMetrics) -> None:
    client = FakeClient()
    manager = ExperimentManager(
        "x",
        tracking_uri=URI,
        client=client,  # type: ignore[arg-type]
        metrics=metrics,
        retry_policy=RetryPolicy(max_attempts=1),
    )
    manager.resilience.breaker = CircuitBreaker("private", failure_threshold=100)
    client.faults["set_terminated"] = connection_refused
    with pytest.raises(KeyError, match="the user's bug") as info, manager.start_run():
        raise KeyError("the user's bug")
    assert any("marking run" in n for n in getattr(info.value, "__notes__", []))


def _resolver_error(errno: int, text: str) -> MlflowException:
    try:
        try:
            raise socket.gaierror(errno, text)
        except socket.gaierror as g:
            raise requests.exceptions.ConnectionError("Max retries exceeded") from g
    except requests.exceptions.ConnectionError as c:
        try:
            raise MlflowException("API request to http://nope failed with exception") from c
        except MlflowException as exc:
            return exc


def test_tls_and_unknown_host_are_not_transient() -> None:
    assert classify(requests.exceptions.SSLError("certificate verify failed")) is None
    assert classify(_resolver_error(socket.EAI_NONAME, "Name or service not known")) is None
    assert classify(_resolver_error(socket.EAI_AGAIN, "Temporary failure")) is not None
    assert is_auth_error(RestException({"error_code": "UNAUTHENTICATED", "message": "who"}))
    assert not is_auth_error(RestException({"error_code": "BAD_REQUEST", "message": "x"}))


def test_tenacity_floor_is_the_first_importable_release() -> None:
    requires = importlib.metadata.requires("hokusai-ml-platform") or []
    (tenacity,) = [r for r in requires if r.startswith("tenacity")]
    assert ">=8.3" in tenacity.replace(" ", "").split(",") or "tenacity>=8.3" in tenacity


def test_outbox_gauges_are_read_at_scrape_time(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    reg.register_model("m", "s3://b/1")
    labels = {"outbox": str(tmp_path / "o.sqlite3")}
    assert metrics.registry.get_sample_value("hokusai_sdk_outbox_depth", labels) == 1
    age = metrics.registry.get_sample_value("hokusai_sdk_outbox_oldest_pending_age_seconds", labels)
    assert age is not None and age >= 0
    # another process (same file, another Outbox object) flushes and fails rows meanwhile
    other = Outbox(tmp_path / "o.sqlite3")
    (row,) = other.entries()
    other.mark_failed(row, error="refused")
    assert metrics.registry.get_sample_value("hokusai_sdk_outbox_depth", labels) == 0
    assert metrics.registry.get_sample_value("hokusai_sdk_outbox_failed", labels) == 1
    assert (
        metrics.registry.get_sample_value("hokusai_sdk_outbox_oldest_pending_age_seconds", labels)
        is None
    )


def test_flush_honours_the_registry_uri(tmp_path: Path, metrics: SdkMetrics) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    plain = make(tmp_path, metrics, client)
    other = make(tmp_path, metrics, client, registry_uri="http://registry.example")
    a = plain.register_model("m", "s3://b/plain")
    b = other.register_model("m", "s3://b/other")
    del client.faults["create_model_version"]
    assert [r.idempotency_key for r in other.flush().registered] == [b.idempotency_key]
    assert [r.idempotency_key for r in plain.flush().registered] == [a.idempotency_key]


def test_cli_requeue_puts_failed_rows_back(
    tmp_path: Path, metrics: SdkMetrics, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient(models={"m"}, faults={"create_model_version": connection_refused})
    reg = make(tmp_path, metrics, client)
    r = reg.register_model("m", "s3://b/1")
    assert reg.outbox is not None
    (row,) = reg.outbox.entries()
    reg.outbox.mark_failed(row, error="refused")
    path = str(tmp_path / "o.sqlite3")
    assert cli_main(["--path", path, "requeue", "--key", "nope"]) == 0
    assert "requeued 0 row(s)" in capsys.readouterr().out
    assert cli_main(["--path", path, "requeue", "--key", r.idempotency_key]) == 0
    assert "requeued 1 row(s)" in capsys.readouterr().out
    assert reg.outbox.counts() == {"pending": 1, "done": 0, "failed": 0}
