from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from hokusai.errors import IdempotencyConflictError, OutboxError
from hokusai.outbox import Outbox, PendingRegistration, default_outbox_path


def reg(
    key: str, uri: str = "http://127.0.0.1:1", name: str = "m", source: str = "s3://b/m"
) -> PendingRegistration:
    return PendingRegistration.new(
        tracking_uri=uri,
        name=name,
        source=source,
        idempotency_key=key,
        tags={"team": "ml"},
        aliases=["candidate"],
        description="d",
    )


def test_add_is_committed_before_returning(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    assert ob.add(reg("k1"))
    # a completely separate connection (another process would see the same) finds the row
    with sqlite3.connect(tmp_path / "o.sqlite3") as conn:
        assert conn.execute("SELECT idempotency_key, state FROM registrations").fetchall() == [
            ("k1", "pending")
        ]


def test_round_trip_and_duplicate_key(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    assert ob.add(reg("k1"))
    assert not ob.add(reg("k1"))  # same key twice: one row
    (got,) = Outbox(tmp_path / "o.sqlite3").entries()
    assert (got.name, got.source, dict(got.tags), tuple(got.aliases), got.description) == (
        "m",
        "s3://b/m",
        {"team": "ml"},
        ("candidate",),
        "d",
    )


def test_states_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    for k in ("a", "b", "c"):
        ob.add(reg(k))
    ob.mark_done(reg("a"), version="1")
    ob.mark_failed(reg("b"), error="INVALID_PARAMETER_VALUE")
    assert ob.record_attempt(reg("c"), error="refused") == 0
    assert ob.record_attempt(reg("c"), error="refused", strike=True) == 1
    assert ob.counts() == {"pending": 1, "done": 1, "failed": 1}
    assert ob.depth() == 1
    c = ob.get(reg("c"))
    assert c is not None and c.attempts == 2 and c.strikes == 1 and c.last_error == "refused"
    a = ob.get(reg("a"))
    assert a is not None and a.version == "1" and a.state == "done"
    assert ob.get(reg("zzz")) is None
    stats = ob.stats()
    assert (stats.pending, stats.failed) == (1, 1) and stats.oldest_pending_age is not None
    assert ob.requeue() == 1 and ob.counts() == {"pending": 2, "done": 1, "failed": 0}
    assert ob.get(reg("b")).strikes == 0  # type: ignore[union-attr]


def test_one_key_for_two_models_is_two_rows(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    assert ob.add(reg("pipeline-7", name="churn"))
    assert ob.add(reg("pipeline-7", name="fraud"))
    assert [e.name for e in ob.entries()] == ["churn", "fraud"]
    ob.mark_done(reg("pipeline-7", name="churn"), version="1")
    assert [e.name for e in ob.entries()] == ["fraud"]


def test_a_reused_key_with_another_payload_is_refused(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    ob.add(reg("k"))
    assert not ob.add(reg("k"))  # the same registration again: fine, one row
    with pytest.raises(IdempotencyConflictError, match="different registration"):
        ob.add(reg("k", source="s3://b/other"))
    with pytest.raises(IdempotencyConflictError):
        ob.check(reg("k", source="s3://b/other"))
    assert ob.depth() == 1


def test_file_is_private_and_holds_no_credentials(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    ob.add(reg("k", uri="https://alice:s3cret@mlflow.example"))
    assert stat.S_IMODE(ob.path.stat().st_mode) == 0o600
    assert b"s3cret" not in ob.path.read_bytes()
    (row,) = ob.entries(tracking_uri="https://alice:s3cret@mlflow.example")
    assert row.tracking_uri == "https://mlflow.example"


def test_a_0_2_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE registrations (idempotency_key TEXT PRIMARY KEY, tracking_uri TEXT "
            "NOT NULL, registry_uri TEXT, payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT "
            "'pending', created_at REAL NOT NULL, updated_at REAL NOT NULL, attempts INTEGER "
            "NOT NULL DEFAULT 0, last_error TEXT, version TEXT)"
        )
        payload = {
            "name": "m",
            "source": "s3://b/m",
            "run_id": None,
            "tags": {},
            "aliases": [],
            "description": None,
        }
        conn.execute(
            "INSERT INTO registrations VALUES ('k', 'http://u:p@h:5000', NULL, ?, 'pending', "
            "1, 1, 0, NULL, NULL)",
            (json.dumps(payload),),
        )
    path.chmod(0o644)
    ob = Outbox(path)
    (row,) = ob.entries()
    assert (row.idempotency_key, row.tracking_uri, row.name) == ("k", "http://h:5000", "m")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not ob.add(
        PendingRegistration.new(
            tracking_uri="http://h:5000", name="m", source="s3://b/m", idempotency_key="k"
        )
    )


def test_entries_filtered_by_uri_oldest_first(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    ob.add(reg("x", uri="http://a"))
    ob.add(reg("y", uri="http://b"))
    ob.add(reg("z", uri="http://a"))
    assert [e.idempotency_key for e in ob.entries(tracking_uri="http://a")] == ["x", "z"]


def test_replay_lock_is_exclusive(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    order: list[str] = []
    with ob.replay_lock():

        def second() -> None:
            with ob.replay_lock(blocking=False) as held:
                order.append(f"try:{held}")
            with ob.replay_lock():
                order.append("2")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("1")
    t.join(5)
    assert order == ["try:False", "1", "2"]


def test_unwritable_location_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(tmp_path / "file" / "o.sqlite3")


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOKUSAI_OUTBOX_PATH", str(tmp_path / "x.sqlite3"))
    assert default_outbox_path() == tmp_path / "x.sqlite3"
    monkeypatch.delenv("HOKUSAI_OUTBOX_PATH")
    assert default_outbox_path().name == "outbox.sqlite3"
