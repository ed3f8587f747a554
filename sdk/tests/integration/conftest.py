from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .mlflow_server import MlflowServer
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
