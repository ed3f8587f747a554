from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .mlflow_server import MlflowServer
from .postgres import LocalPostgres, postgres_bindir
from .proxy import FlakyProxy


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow server (SQLite, local artifacts) for the whole session."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-shared"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[FlakyProxy]:
    p = FlakyProxy(mlflow_server.port)
    yield p
    p.close()


@pytest.fixture
def model_name() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


REPO = Path(__file__).resolve().parents[3]
MIGRATE_SCRIPT = REPO / "roles" / "mlflow" / "files" / "mlflow_db_migrate.py"


def run_migrate(url: str, stamp: Path | None = None) -> dict[str, object]:
    """The MLflow role's migration step against `url`, as the role runs it; its JSON report."""
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=url, HOKUSAI_AUTH_DATABASE_URI="")
    if stamp is not None:
        env["HOKUSAI_MIGRATION_STAMP"] = str(stamp)
    done = subprocess.run(
        [sys.executable, str(MIGRATE_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@dataclass
class PgMlflow:
    """A real MLflow server on a real PostgreSQL, migrated and indexed by the MLflow role's
    own post-migration step (roles/mlflow/files/mlflow_db_migrate.py)."""

    pg: LocalPostgres
    server: MlflowServer
    migrate_report: dict[str, object]


@pytest.fixture(scope="session")
def pg_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgMlflow]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries not found (initdb/postgres): apt-get install postgresql; "
            "sdk/scripts/test.sh installs it when run as root"
        )
    # not under pytest's tmp dir: that one is 0700 root, and the cluster runs as postgres
    pg = LocalPostgres(Path(tempfile.mkdtemp(prefix="hokusai-pg-")), bindir)
    pg.init()
    server = None
    try:
        report = run_migrate(pg.url)
        server = MlflowServer(tmp_path_factory.mktemp("mlflow-pg"), backend_uri=pg.url)
        server.start()
        yield PgMlflow(pg, server, report)
    finally:
        if server is not None:
            server.stop()
        pg.stop()
        shutil.rmtree(pg.workdir, ignore_errors=True)


@pytest.fixture
def pg_proxy(pg_mlflow: PgMlflow) -> Iterator[FlakyProxy]:
    p = FlakyProxy(pg_mlflow.server.port)
    yield p
    p.close()
