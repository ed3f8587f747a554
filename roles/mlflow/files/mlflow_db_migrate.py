"""Bring the MLflow schemas (tracking + basic-auth user store) to the installed release.

Run once per deployment, from one host, before any instance starts (the role
does it with run_once). Re-runs are no-ops. Reads the URIs from the
environment so no password shows up in a process listing:
  MLFLOW_BACKEND_STORE_URI   tracking/model-registry database
  HOKUSAI_AUTH_DATABASE_URI  basic-auth user store (optional)
Prints a JSON report: schema revisions before and after, and "changed".
"""

from __future__ import annotations

import json
import os
import sys

import sqlalchemy


def revision(engine: sqlalchemy.engine.Engine, table: str) -> str | None:
    with engine.connect() as conn:
        if not sqlalchemy.inspect(conn).has_table(table):
            return None
        return conn.execute(sqlalchemy.text(f"SELECT version_num FROM {table}")).scalar()  # noqa: S608 - fixed names


def migrate_tracking(uri: str) -> dict:
    from mlflow.db import upgrade  # the `mlflow db upgrade` command itself

    engine = sqlalchemy.create_engine(uri)
    try:
        before = revision(engine, "alembic_version")
        upgrade.main(args=[uri], standalone_mode=False)
        after = revision(engine, "alembic_version")
    finally:
        engine.dispose()
    return {"before": before, "after": after}


def migrate_auth(uri: str) -> dict:
    from mlflow.server.auth.db import utils

    engine = sqlalchemy.create_engine(uri)
    try:
        before = revision(engine, "alembic_version_auth")
        utils.migrate_if_needed(engine, "head")
        after = revision(engine, "alembic_version_auth")
    finally:
        engine.dispose()
    return {"before": before, "after": after}


def main() -> int:
    report: dict = {"tracking": migrate_tracking(os.environ["MLFLOW_BACKEND_STORE_URI"])}
    auth_uri = os.environ.get("HOKUSAI_AUTH_DATABASE_URI", "")
    if auth_uri:
        report["auth"] = migrate_auth(auth_uri)
    report["changed"] = any(v["before"] != v["after"] for v in report.values() if isinstance(v, dict))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
