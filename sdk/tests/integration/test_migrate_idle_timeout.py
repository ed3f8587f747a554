"""The MLflow role's migration step under the application role's short
idle_in_transaction_session_timeout (roles/patroni: patroni_app_idle_in_transaction_timeout),
against the real PostgreSQL of `pg_mlflow`. A session with a 1 s timeout that pauses 1.5 s
inside a transaction is cut by PostgreSQL; the same pause through an engine the migration
step has exempted (SET LOCAL ... = 0 at each transaction's start) is not. Without the
exemption a migration that runs Python between its statements for longer than the timeout
would be killed half-way on a loaded host.
"""

from __future__ import annotations

import importlib.util
import time
from types import ModuleType

import pytest
import sqlalchemy

from .conftest import MIGRATE_SCRIPT, PgMlflow


def load_migrate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hokusai_mlflow_db_migrate", MIGRATE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pause_in_transaction(engine: sqlalchemy.engine.Engine) -> int:
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))
        time.sleep(1.5)
        return int(conn.execute(sqlalchemy.text("SELECT 2")).scalar_one())


def test_migration_transactions_are_exempt_from_the_idle_timeout(pg_mlflow: PgMlflow) -> None:
    migrate = load_migrate()
    short = {"options": "-c idle_in_transaction_session_timeout=1000"}

    plain = sqlalchemy.create_engine(pg_mlflow.pg.url, connect_args=short)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError, match="server closed the connection"):
            pause_in_transaction(plain)
    finally:
        plain.dispose()

    exempt = sqlalchemy.create_engine(pg_mlflow.pg.url, connect_args=short)
    migrate.exempt_from_idle_timeout(exempt)
    try:
        assert pause_in_transaction(exempt) == 2
        raw = exempt.raw_connection()  # the same server session, past SQLAlchemy's events
        try:
            cursor = raw.cursor()
            cursor.execute("SHOW idle_in_transaction_session_timeout")
            assert cursor.fetchone() == ("1s",)  # the exemption ended with its transaction
        finally:
            raw.close()
    finally:
        exempt.dispose()
