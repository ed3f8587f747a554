"""A durable local spool (SQLite) for registrations that could not reach MLflow.

Each row is one registration with its idempotency key as primary key. ``add()`` returns only after
the transaction is committed with ``PRAGMA synchronous=EXTRA`` (journal and database fsync'd, the
journal's directory too), so a pending receipt handed to a caller survives a crash or power loss
of the client host. Replay is done by :meth:`hokusai.core.ModelRegistry.flush`; rows become
``done`` only after MLflow acknowledged the version, and replay looks the key up first, so a crash
between "MLflow committed" and "row marked done" is harmless.

>>> import tempfile, os
>>> ob = Outbox(os.path.join(tempfile.mkdtemp(), "outbox.sqlite3"))
>>> ob.add(PendingRegistration.new(tracking_uri="http://127.0.0.1:5000", name="m",
...                                source="s3://bucket/m", idempotency_key="k1"))
True
>>> ob.depth()
1
>>> ob.mark_done("k1", version="3"); ob.depth()
0
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hokusai.errors import OutboxError

__all__ = ["Outbox", "OutboxState", "PendingRegistration", "default_outbox_path"]

OutboxState = Literal["pending", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    idempotency_key TEXT PRIMARY KEY,
    tracking_uri    TEXT NOT NULL,
    registry_uri    TEXT,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    version         TEXT
);
CREATE INDEX IF NOT EXISTS registrations_state ON registrations (state, created_at);
"""


def default_outbox_path() -> Path:
    """``$HOKUSAI_OUTBOX_PATH``, else ``~/.cache/hokusai/outbox.sqlite3``."""
    env = os.environ.get("HOKUSAI_OUTBOX_PATH")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "hokusai" / "outbox.sqlite3"


@dataclass(frozen=True)
class PendingRegistration:
    """Everything needed to replay one ``register_model`` call."""

    idempotency_key: str
    tracking_uri: str
    name: str
    source: str
    registry_uri: str | None = None
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Sequence[str] = ()
    description: str | None = None
    created_at: float = 0.0
    state: OutboxState = "pending"
    attempts: int = 0
    last_error: str | None = None
    version: str | None = None

    @classmethod
    def new(
        cls,
        *,
        tracking_uri: str,
        name: str,
        source: str,
        idempotency_key: str,
        registry_uri: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        description: str | None = None,
    ) -> PendingRegistration:
        return cls(
            idempotency_key=idempotency_key,
            tracking_uri=tracking_uri,
            name=name,
            source=source,
            registry_uri=registry_uri,
            run_id=run_id,
            tags=dict(tags or {}),
            aliases=tuple(aliases),
            description=description,
            created_at=time.time(),
        )


class Outbox:
    """SQLite spool of pending registrations. Safe for several threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=EXTRA")
            yield conn
        finally:
            conn.close()

    def _write(self, sql: str, params: Sequence[object]) -> int:
        try:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.execute(sql, params)
                conn.execute("COMMIT")
                return cur.rowcount
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    def add(self, reg: PendingRegistration) -> bool:
        """Spool *reg* durably. Returns ``False`` if its key was already spooled (no new row)."""
        payload = json.dumps(
            {
                "name": reg.name,
                "source": reg.source,
                "run_id": reg.run_id,
                "tags": dict(reg.tags),
                "aliases": list(reg.aliases),
                "description": reg.description,
            },
            sort_keys=True,
        )
        now = time.time()
        rows = self._write(
            "INSERT OR IGNORE INTO registrations (idempotency_key, tracking_uri, registry_uri, "
            "payload, state, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (reg.idempotency_key, reg.tracking_uri, reg.registry_uri, payload, reg.created_at, now),
        )
        return rows == 1

    def entries(
        self,
        state: OutboxState | None = "pending",
        tracking_uri: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> list[PendingRegistration]:
        """Rows in *state* (all states if ``None``), oldest first."""
        sql = "SELECT * FROM registrations WHERE 1=1"
        params: list[object] = []
        if idempotency_key is not None:
            sql += " AND idempotency_key = ?"
            params.append(idempotency_key)
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if tracking_uri is not None:
            sql += " AND tracking_uri = ?"
            params.append(tracking_uri)
        sql += " ORDER BY created_at, rowid"
        try:
            with self._connect() as conn:
                conn.row_factory = sqlite3.Row
                rows = conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        result = []
        for row in rows:
            payload = json.loads(row["payload"])
            result.append(
                PendingRegistration(
                    idempotency_key=row["idempotency_key"],
                    tracking_uri=row["tracking_uri"],
                    registry_uri=row["registry_uri"],
                    name=payload["name"],
                    source=payload["source"],
                    run_id=payload["run_id"],
                    tags=payload["tags"],
                    aliases=tuple(payload["aliases"]),
                    description=payload["description"],
                    created_at=row["created_at"],
                    state=row["state"],
                    attempts=row["attempts"],
                    last_error=row["last_error"],
                    version=row["version"],
                )
            )
        return result

    def get(self, idempotency_key: str) -> PendingRegistration | None:
        found = self.entries(state=None, idempotency_key=idempotency_key)
        return found[0] if found else None

    def mark_done(self, idempotency_key: str, *, version: str) -> None:
        """MLflow acknowledged the version: the row is never replayed again."""
        self._write(
            "UPDATE registrations SET state='done', version=?, updated_at=?, last_error=NULL "
            "WHERE idempotency_key=?",
            (version, time.time(), idempotency_key),
        )

    def mark_failed(self, idempotency_key: str, *, error: str) -> None:
        """MLflow refused the replay (not transient): kept for a human, never replayed."""
        self._write(
            "UPDATE registrations SET state='failed', last_error=?, attempts=attempts+1, "
            "updated_at=? WHERE idempotency_key=?",
            (error, time.time(), idempotency_key),
        )

    def record_attempt(self, idempotency_key: str, *, error: str) -> None:
        """A replay failed transiently: the row stays pending."""
        self._write(
            "UPDATE registrations SET attempts=attempts+1, last_error=?, updated_at=? "
            "WHERE idempotency_key=?",
            (error, time.time(), idempotency_key),
        )

    def counts(self) -> dict[str, int]:
        """Number of rows per state, e.g. ``{"pending": 2, "done": 10, "failed": 0}``."""
        out = {"pending": 0, "done": 0, "failed": 0}
        try:
            with self._connect() as conn:
                for state, n in conn.execute(
                    "SELECT state, COUNT(*) FROM registrations GROUP BY state"
                ):
                    out[str(state)] = int(n)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        return out

    def depth(self) -> int:
        """Pending registrations."""
        return self.counts()["pending"]

    @contextlib.contextmanager
    def replay_lock(self) -> Iterator[None]:
        """Exclusive lock so that two ``flush()`` runs on one host never replay concurrently."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
