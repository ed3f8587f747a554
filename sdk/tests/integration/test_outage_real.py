"""A real outage: the MLflow server is SIGKILLed during a stream of registrations.

Fails if any registration is lost (a receipt whose key never shows up as a version) or
duplicated (a key on two versions, or more versions than receipts).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hokusai.breaker import CircuitBreaker
from hokusai.cli import main as cli_main
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry, Registration
from hokusai.metrics import SdkMetrics
from hokusai.outbox import Outbox, PendingRegistration
from hokusai.resilience import RetryPolicy

from .mlflow_server import MlflowServer

pytestmark = pytest.mark.integration

TOTAL = 40
KILL_AFTER = 12


def test_outage_spools_and_flush_registers_each_exactly_once(
    tmp_path: Path,
    metrics: SdkMetrics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = MlflowServer(tmp_path / "server")
    server.start()
    outbox_path = tmp_path / "outbox.sqlite3"
    breaker = CircuitBreaker(server.url, failure_threshold=3, reset_timeout=1.0)
    reg = ModelRegistry(
        server.url,
        metrics=metrics,
        breaker=breaker,
        outbox_path=outbox_path,
        auto_drain=False,  # this test replays by hand (the background drain has its own test)
        retry_policy=RetryPolicy(
            max_attempts=3, initial_backoff=0.05, max_backoff=0.2, deadline=3, attempt_timeout=3
        ),
    )
    name = "outage-model"
    receipts: list[Registration] = []
    reached = threading.Event()
    killer = threading.Thread(target=lambda: (reached.wait(60), server.stop()))
    killer.start()
    try:
        for i in range(TOTAL):
            if i == KILL_AFTER:
                reached.set()  # the kill now races with the registrations that follow
            receipts.append(reg.register_model(name, f"s3://bucket/outage/{i}", tags={"i": str(i)}))
        killer.join(60)
        registered = [r for r in receipts if r.status == "registered"]
        pending = [r for r in receipts if r.pending]
        assert len(registered) >= KILL_AFTER
        assert len(pending) > 0, "the server was killed mid-stream; later calls must spool"
        assert breaker.state == "open"
        assert Outbox(outbox_path).depth() == len(pending)
        assert metrics.registry.get_sample_value(
            "hokusai_sdk_outbox_depth", {"outbox": str(outbox_path)}
        ) == len(pending)

        # flushing while MLflow is still down replays nothing and loses nothing
        assert reg.flush().still_pending == len(pending)

        server.start()  # same port, same database

        # a crash in the middle of a replay: MLflow committed, the outbox row was not marked
        ob = reg.outbox
        assert ob is not None
        real_mark_done = ob.mark_done
        calls = {"n": 0}

        def crash_on_second(row: PendingRegistration, *, version: str) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("replay process killed")
            real_mark_done(row, version=version)

        time.sleep(breaker.config.reset_timeout)  # the breaker lets a probe through again
        monkeypatch.setattr(ob, "mark_done", crash_on_second)
        with pytest.raises(KeyboardInterrupt):
            reg.flush()
        monkeypatch.undo()
        assert Outbox(outbox_path).depth() == len(pending) - 1

        # the operator's CLI finishes the job
        assert cli_main(["--path", str(outbox_path), "flush"]) == 0
        out = capsys.readouterr().out
        assert "pending=0" in out and "(already registered)" in out
        assert cli_main(["--path", str(outbox_path), "status"]) == 0

        versions = MlflowClient(server.url).search_model_versions(f"name = '{name}'")
        keys = Counter(mv.tags.get(IDEMPOTENCY_TAG) for mv in versions)
        duplicated = {k: n for k, n in keys.items() if n > 1}
        lost = {r.idempotency_key for r in receipts} - set(keys)
        assert not duplicated, f"duplicated registrations: {duplicated}"
        assert not lost, f"lost registrations: {lost}"
        assert len(versions) == TOTAL
        by_key = {mv.tags[IDEMPOTENCY_TAG]: mv for mv in versions}
        for i, r in enumerate(receipts):
            assert by_key[r.idempotency_key].source == f"s3://bucket/outage/{i}"
            if r.version is not None:
                assert by_key[r.idempotency_key].version == r.version
    finally:
        reached.set()
        killer.join(60)
        server.stop()
