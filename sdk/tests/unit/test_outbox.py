from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from hokusai.errors import OutboxError
from hokusai.outbox import Outbox, PendingRegistration, default_outbox_path


def reg(key: str, uri: str = "http://127.0.0.1:1") -> PendingRegistration:
    return PendingRegistration.new(
        tracking_uri=uri,
        name="m",
        source="s3://b/m",
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
    ob.mark_done("a", version="1")
    ob.mark_failed("b", error="INVALID_PARAMETER_VALUE")
    ob.record_attempt("c", error="refused")
    assert ob.counts() == {"pending": 1, "done": 1, "failed": 1}
    assert ob.depth() == 1
    c = ob.get("c")
    assert c is not None and c.attempts == 1 and c.last_error == "refused"
    a = ob.get("a")
    assert a is not None and a.version == "1" and a.state == "done"
    assert ob.get("zzz") is None


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
            with ob.replay_lock():
                order.append("2")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("1")
    t.join(5)
    assert order == ["1", "2"]


def test_unwritable_location_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(tmp_path / "file" / "o.sqlite3")


def test_default_path_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOKUSAI_OUTBOX_PATH", str(tmp_path / "x.sqlite3"))
    assert default_outbox_path() == tmp_path / "x.sqlite3"
    monkeypatch.delenv("HOKUSAI_OUTBOX_PATH")
    assert default_outbox_path().name == "outbox.sqlite3"
