"""The MLflow role's migration step (roles/mlflow/files/mlflow_db_migrate.py) on a re-run,
against the real PostgreSQL of `pg_mlflow`: with HOKUSAI_MIGRATION_STAMP a run that finds the
database exactly as it left it answers from the stamp without loading MLflow; any difference
(here: the SDK's key index dropped, a stamp from another state) takes the full path and
repairs it. Without the stamp check every deploy would pay MLflow's import; without the
comparison a dropped index would never come back.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy

from .conftest import PgMlflow, run_migrate

KEY_INDEX = "hokusai_model_version_key_uq"


def migrate(url: str, stamp: Path) -> dict[str, object]:
    return run_migrate(url, stamp)


def has_key_index(url: str) -> bool:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return KEY_INDEX in {
                ix["name"] for ix in sqlalchemy.inspect(conn).get_indexes("model_version_tags")
            }
    finally:
        engine.dispose()


def drop_key_index(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP INDEX {KEY_INDEX}"))
    finally:
        engine.dispose()


def test_rerun_answers_from_the_stamp_and_a_dropped_index_is_repaired(
    pg_mlflow: PgMlflow, tmp_path: Path
) -> None:
    url = pg_mlflow.pg.url
    stamp = tmp_path / "migration.stamp"

    first = migrate(url, stamp)  # no stamp yet: the full path, nothing to change
    assert first["changed"] is False and "checked_against" not in first
    recorded = json.loads(stamp.read_text())
    assert recorded["key_index"] is True and recorded["tracking"]

    second = migrate(url, stamp)
    assert second["checked_against"] == "stamp" and second["changed"] is False

    drop_key_index(url)
    try:
        third = migrate(url, stamp)  # the database differs from the stamp: full path
        assert "checked_against" not in third
        assert third["changed"] is True
        assert third["key_index"] == {"name": KEY_INDEX, "changed": True}
    finally:
        if not has_key_index(url):  # the other tests of the session need it
            migrate(url, tmp_path / "repair.stamp")
    assert has_key_index(url)

    stamp.write_text(json.dumps({**recorded, "mlflow": "0.0.0"}))  # another release recorded
    fourth = migrate(url, stamp)
    assert "checked_against" not in fourth and fourth["changed"] is False
    assert json.loads(stamp.read_text()) == recorded
