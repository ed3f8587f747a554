"""The health probe sees a broken database that MLflow's own /health does not."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry
from hokusai.metrics import SdkMetrics

from .mlflow_server import MlflowServer

pytestmark = pytest.mark.integration


def test_probe_fails_when_the_database_is_gone_while_health_says_ok(
    tmp_path: Path, metrics: SdkMetrics
) -> None:
    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        reg = ModelRegistry(
            server.url, metrics=metrics, breaker=CircuitBreaker(server.url), spool=False
        )
        assert reg.health().healthy
        db = server.workdir / "mlflow.db"
        with db.open("r+b") as f:  # same inode, garbage content: the DB is unusable
            f.write(b"\0" * db.stat().st_size)
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:  # noqa: S310 -- loopback
            assert resp.status == 200  # MLflow's /health never touches the database
        report = reg.health()
        assert not report.healthy
        assert report.error is not None
        assert "not a database" in report.error  # the probe reached the DB and saw it
    finally:
        server.stop()
