"""Bring the MLflow schemas (tracking + basic-auth user store) to the installed release.

Run once per deployment, from one host, before any instance starts (the role
does it with run_once). Re-runs are no-ops. Reads the URIs from the
environment so no password shows up in a process listing:
  MLFLOW_BACKEND_STORE_URI   tracking/model-registry database
  HOKUSAI_AUTH_DATABASE_URI  basic-auth user store (optional)
Prints a JSON report: schema revisions before and after, the key index, and "changed".

After `mlflow db upgrade` it creates the Hokusai SDK's idempotency index: a partial unique
index on model_version_tags (workspace, name, value) WHERE key = 'hokusai.idempotency_key'.
MLflow's SqlAlchemyStore.create_model_version inserts the version row and its tags in one
session and one commit (session.add_all + flush inside ManagedSessionMaker; verified in
mlflow 3.17.2 mlflow/store/model_registry/sqlalchemy_store.py), so a second version carrying
an existing key fails as a whole: MLflow retries the IntegrityError 3 times and answers
"Model Version creation error ... Giving up after 3 attempts" (HTTP 500), which the SDK turns
into "look up the key and return the existing version". Deleted versions keep their tags in
MLflow, so a deleted version's key stays taken. The SDK's tests (sdk/tests/integration) load
this file and run ensure_key_index against a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import sys

import sqlalchemy
from sqlalchemy import event


def _no_idle_timeout(conn: sqlalchemy.engine.Connection) -> None:
    conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")


def exempt_from_idle_timeout(target: type[sqlalchemy.engine.Engine] | sqlalchemy.engine.Engine) -> None:
    """Lift the application role's idle_in_transaction_session_timeout for every transaction
    opened through `target` (an engine, or the Engine class: every engine of the process).

    The patroni role gives the role a short timeout (patroni_app_idle_in_transaction_timeout,
    2 s) so that an MLflow instance frozen mid-transaction cannot hold a registered model's row
    lock for the length of the freeze. A migration runs Python between its statements inside
    one transaction and must not be cut by it. SET LOCAL ends with the transaction, so nothing
    leaks to the pooler's server connection (pgbouncer in transaction mode).
    """
    event.listen(target, "begin", _no_idle_timeout)


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


IDEMPOTENCY_TAG = "hokusai.idempotency_key"
KEY_INDEX = "hokusai_model_version_key_uq"


def ensure_key_index(uri: str) -> dict:
    """Create the SDK's partial unique index on the idempotency tag if it is missing.

    Refuses (SystemExit with the offending keys) when versions already share a key: converge
    them first (keep the lowest version of each key, delete the others).
    """
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.begin() as conn:
            inspector = sqlalchemy.inspect(conn)
            if KEY_INDEX in {ix["name"] for ix in inspector.get_indexes("model_version_tags")}:
                return {"name": KEY_INDEX, "changed": False}
            columns = {c["name"] for c in inspector.get_columns("model_version_tags")}
            scope = "workspace, name" if "workspace" in columns else "name"
            dups = conn.execute(
                sqlalchemy.text(
                    f"SELECT {scope}, value, COUNT(*) FROM model_version_tags "  # noqa: S608 - fixed names
                    f"WHERE key = :key GROUP BY {scope}, value HAVING COUNT(*) > 1"
                ),
                {"key": IDEMPOTENCY_TAG},
            ).fetchall()
            if dups:
                sample = ", ".join(str(tuple(d)) for d in dups[:5])
                raise SystemExit(
                    f"cannot create {KEY_INDEX}: {len(dups)} idempotency keys are on several "
                    f"model versions ({sample}); keep the lowest version of each, delete the "
                    "others, then re-run"
                )
            conn.execute(
                sqlalchemy.text(
                    f"CREATE UNIQUE INDEX {KEY_INDEX} ON model_version_tags ({scope}, value) "
                    f"WHERE key = '{IDEMPOTENCY_TAG}'"
                )
            )
        return {"name": KEY_INDEX, "changed": True}
    finally:
        engine.dispose()


def observed_state(tracking_uri: str, auth_uri: str) -> dict:
    """What the database holds now and which MLflow is installed, without importing MLflow."""
    from importlib.metadata import version

    engine = sqlalchemy.create_engine(tracking_uri)
    try:
        tracking = revision(engine, "alembic_version")
        with engine.connect() as conn:
            has_index = sqlalchemy.inspect(conn).has_table("model_version_tags") and KEY_INDEX in {
                ix["name"] for ix in sqlalchemy.inspect(conn).get_indexes("model_version_tags")
            }
    finally:
        engine.dispose()
    auth = None
    if auth_uri:
        engine = sqlalchemy.create_engine(auth_uri)
        try:
            auth = revision(engine, "alembic_version_auth")
        finally:
            engine.dispose()
    return {"mlflow": version("mlflow"), "tracking": tracking, "auth": auth, "key_index": has_index}


def read_stamp(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_stamp(path: str, state: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(tmp, path)


def main() -> int:
    exempt_from_idle_timeout(sqlalchemy.engine.Engine)
    tracking_uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    auth_uri = os.environ.get("HOKUSAI_AUTH_DATABASE_URI", "")
    # HOKUSAI_MIGRATION_STAMP: the state this host last brought the database to. When
    # the installed release, the revisions in the database and the key index are all
    # exactly as recorded there, nothing can need migrating and MLflow (seconds to
    # import) is not loaded. Any difference (another release, a restored older
    # database, a dropped index) runs the full path below.
    stamp_path = os.environ.get("HOKUSAI_MIGRATION_STAMP", "")
    if stamp_path:
        state = observed_state(tracking_uri, auth_uri)
        if state["tracking"] is not None and read_stamp(stamp_path) == state:
            stamped: dict[str, object] = {
                k: {"before": state[k], "after": state[k]} for k in ("tracking", "auth") if state[k]
            }
            stamped["key_index"] = {"name": KEY_INDEX, "changed": False}
            stamped["changed"] = False
            stamped["checked_against"] = "stamp"
            print(json.dumps(stamped))
            return 0
    report: dict = {"tracking": migrate_tracking(tracking_uri)}
    if auth_uri:
        report["auth"] = migrate_auth(auth_uri)
    key_index = ensure_key_index(tracking_uri)  # after the migrations: it needs their tables
    report["changed"] = key_index["changed"] or any(
        v["before"] != v["after"] for v in report.values() if isinstance(v, dict)
    )
    report["key_index"] = key_index
    if stamp_path:
        write_stamp(stamp_path, observed_state(tracking_uri, auth_uri))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
