"""A durable local spool (SQLite) for registrations that could not reach MLflow.

A row is identified by (tracking URI, registry URI, model name, idempotency key): the same
pipeline key used for two models gives two rows, and a key reused with a *different* payload is
refused at once (:class:`~hokusai.errors.IdempotencyConflictError`). ``add()`` returns only after
the transaction is committed with ``PRAGMA synchronous=EXTRA`` (journal and database fsync'd, the
journal's directory too), so a pending receipt handed to a caller survives a crash or power loss
of the client host. The file is created ``0600`` and stores URIs without credentials (replays take
them from the environment, e.g. ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``).

Replay is done by :meth:`hokusai.core.ModelRegistry.flush`; rows become ``done`` only after MLflow
acknowledged the version, and replay looks the key up first, so a crash between "MLflow committed"
and "row marked done" is harmless. ``strikes`` counts replays that failed transiently while other
rows went through (the server was up: the row itself is the problem); after
``ModelRegistry(max_replay_strikes=...)`` of them the row is ``failed``. ``requeue()`` puts failed
rows back.

>>> import tempfile, os
>>> ob = Outbox(os.path.join(tempfile.mkdtemp(), "outbox.sqlite3"))
>>> row = PendingRegistration.new(tracking_uri="http://127.0.0.1:5000", name="m",
...                               source="s3://bucket/m", idempotency_key="k1")
>>> ob.add(row)
True
>>> ob.depth()
1
>>> ob.mark_done(row, version="3"); ob.depth()
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

from hokusai.errors import IdempotencyConflictError, OutboxError
from hokusai.metrics import redact_uri

__all__ = ["Outbox", "OutboxState", "OutboxStats", "PendingRegistration", "default_outbox_path"]

OutboxState = Literal["pending", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    tracking_uri    TEXT NOT NULL,
    registry_uri    TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    strikes         INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    version         TEXT,
    PRIMARY KEY (tracking_uri, registry_uri, name, idempotency_key)
);
CREATE INDEX IF NOT EXISTS registrations_by_state ON registrations (state, created_at);
"""


def default_outbox_path() -> Path:
    """``$HOKUSAI_OUTBOX_PATH``, else ``~/.cache/hokusai/outbox.sqlite3``."""
    env = os.environ.get("HOKUSAI_OUTBOX_PATH")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "hokusai" / "outbox.sqlite3"


@dataclass(frozen=True)
class PendingRegistration:
    """Everything needed to replay one ``register_model`` call (as the caller gave it)."""

    idempotency_key: str
    tracking_uri: str
    name: str
    source: str | None
    registry_uri: str | None = None
    run_id: str | None = None
    artifact_path: str = "model"
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Sequence[str] = ()
    description: str | None = None
    created_at: float = 0.0
    state: OutboxState = "pending"
    attempts: int = 0
    strikes: int = 0
    last_error: str | None = None
    version: str | None = None

    @classmethod
    def new(
        cls,
        *,
        tracking_uri: str,
        name: str,
        source: str | None,
        idempotency_key: str,
        registry_uri: str | None = None,
        run_id: str | None = None,
        artifact_path: str = "model",
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
            artifact_path=artifact_path,
            tags=dict(tags or {}),
            aliases=tuple(aliases),
            description=description,
            created_at=time.time(),
        )

    def payload(self) -> str:
        """The registration's content as canonical JSON (what a reused key must match)."""
        return json.dumps(
            {
                "name": self.name,
                "source": self.source,
                "run_id": self.run_id,
                "artifact_path": self.artifact_path,
                "tags": dict(self.tags),
                "aliases": list(self.aliases),
                "description": self.description,
            },
            sort_keys=True,
        )

    def identity(self) -> tuple[str, str, str, str]:
        """(tracking URI, registry URI, name, key), URIs without credentials."""
        return (
            redact_uri(self.tracking_uri),
            redact_uri(self.registry_uri) if self.registry_uri else "",
            self.name,
            self.idempotency_key,
        )


@dataclass(frozen=True)
class OutboxStats:
    """Read at scrape time by the metrics collector."""

    pending: int
    failed: int
    oldest_pending_age: float | None


class Outbox:
    """SQLite spool of pending registrations. Safe for several threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # created 0600 before SQLite opens it (its journal inherits the mode)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            with contextlib.suppress(PermissionError):
                os.chmod(self.path, 0o600)  # an older file made 0644
            with self._connect() as conn:
                self._migrate(conn)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(registrations)")}
        if not columns or "strikes" in columns:
            conn.executescript(_SCHEMA)
            return
        # a 0.2.0 file: keyed by idempotency_key alone, URIs possibly with credentials
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute(
                "SELECT idempotency_key, tracking_uri, registry_uri, payload, state, "
                "created_at, updated_at, attempts, last_error, version FROM registrations"
            ).fetchall()
            conn.execute("DROP TABLE registrations")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for key, uri, reg_uri, payload, *rest in old:
                conn.execute(
                    "INSERT OR IGNORE INTO registrations (idempotency_key, tracking_uri, "
                    "registry_uri, name, payload, state, created_at, updated_at, attempts, "
                    "last_error, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        redact_uri(uri),
                        redact_uri(reg_uri) if reg_uri else "",
                        json.loads(payload)["name"],
                        json.dumps(
                            {"artifact_path": "model", **json.loads(payload)}, sort_keys=True
                        ),
                        *rest,
                    ),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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

    def check(self, reg: PendingRegistration) -> None:
        """Raise :class:`IdempotencyConflictError` if *reg*'s row exists with another payload."""
        existing = self.get(reg)
        if existing is not None and existing.payload() != reg.payload():
            raise IdempotencyConflictError(
                f"idempotency key {reg.idempotency_key!r} of model {reg.name!r} is already in "
                f"the outbox ({existing.state}) for a different registration "
                f"(source {existing.source!r}, run {existing.run_id!r}); use a new key for a "
                "new registration"
            )

    def add(self, reg: PendingRegistration) -> bool:
        """Spool *reg* durably. ``False`` if the identical row exists; a different one raises."""
        now = time.time()
        try:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(
                    "SELECT payload FROM registrations WHERE tracking_uri=? AND registry_uri=? "
                    "AND name=? AND idempotency_key=?",
                    reg.identity(),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO registrations (tracking_uri, registry_uri, name, "
                        "idempotency_key, payload, state, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                        (*reg.identity(), reg.payload(), reg.created_at or now, now),
                    )
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        if row is not None and row[0] != reg.payload():
            self.check(reg)  # raises with the details
        return row is None

    def entries(
        self,
        state: OutboxState | None = "pending",
        tracking_uri: str | None = None,
        *,
        registry_uri: str | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[PendingRegistration]:
        """Rows in *state* (all states if ``None``), oldest first.

        ``registry_uri=""`` selects rows without a registry URI; ``None`` does not filter.
        """
        sql = "SELECT * FROM registrations WHERE 1=1"
        params: list[object] = []
        for column, value in (
            ("idempotency_key", idempotency_key),
            ("state", state),
            ("tracking_uri", redact_uri(tracking_uri) if tracking_uri is not None else None),
            ("registry_uri", redact_uri(registry_uri) if registry_uri else registry_uri),
            ("name", name),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
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
                    registry_uri=row["registry_uri"] or None,
                    name=row["name"],
                    source=payload["source"],
                    run_id=payload["run_id"],
                    artifact_path=payload.get("artifact_path", "model"),
                    tags=payload["tags"],
                    aliases=tuple(payload["aliases"]),
                    description=payload["description"],
                    created_at=row["created_at"],
                    state=row["state"],
                    attempts=row["attempts"],
                    strikes=row["strikes"],
                    last_error=row["last_error"],
                    version=row["version"],
                )
            )
        return result

    def get(self, reg: PendingRegistration) -> PendingRegistration | None:
        """The stored row with *reg*'s identity, if any."""
        uri, reg_uri, name, key = reg.identity()
        found = self.entries(
            state=None, tracking_uri=uri, registry_uri=reg_uri, name=name, idempotency_key=key
        )
        return found[0] if found else None

    def mark_done(self, reg: PendingRegistration, *, version: str) -> None:
        """MLflow acknowledged the version: the row is never replayed again."""
        self._write(
            "UPDATE registrations SET state='done', version=?, updated_at=?, last_error=NULL "
            "WHERE tracking_uri=? AND registry_uri=? AND name=? AND idempotency_key=?",
            (version, time.time(), *reg.identity()),
        )

    def mark_failed(
        self, reg: PendingRegistration, *, error: str, version: str | None = None
    ) -> None:
        """MLflow refused the replay (or it used up its strikes): kept for a human/requeue."""
        self._write(
            "UPDATE registrations SET state='failed', last_error=?, attempts=attempts+1, "
            "version=COALESCE(?, version), updated_at=? "
            "WHERE tracking_uri=? AND registry_uri=? AND name=? AND idempotency_key=?",
            (error, version, time.time(), *reg.identity()),
        )

    def record_attempt(self, reg: PendingRegistration, *, error: str, strike: bool = False) -> int:
        """A replay failed transiently: the row stays pending. Returns the row's strikes."""
        self._write(
            "UPDATE registrations SET attempts=attempts+1, strikes=strikes+?, last_error=?, "
            "updated_at=? "
            "WHERE tracking_uri=? AND registry_uri=? AND name=? AND idempotency_key=?",
            (int(strike), error, time.time(), *reg.identity()),
        )
        row = self.get(reg)
        return row.strikes if row is not None else 0

    def requeue(self, idempotency_key: str | None = None) -> int:
        """Failed rows (all, or those of one key) back to pending with no strikes."""
        sql = (
            "UPDATE registrations SET state='pending', strikes=0, updated_at=? WHERE state='failed'"
        )
        params: list[object] = [time.time()]
        if idempotency_key is not None:
            sql += " AND idempotency_key=?"
            params.append(idempotency_key)
        return self._write(sql, params)

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

    def depth(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> int:
        """Pending registrations (of one tracking URI, and registry URI, if given)."""
        if tracking_uri is None:
            return self.counts()["pending"]
        try:
            with self._connect() as conn:
                (n,) = conn.execute(
                    "SELECT COUNT(*) FROM registrations WHERE state='pending' AND tracking_uri=? "
                    "AND (? IS NULL OR registry_uri=?)",
                    (
                        redact_uri(tracking_uri),
                        registry_uri,
                        redact_uri(registry_uri) if registry_uri else registry_uri,
                    ),
                ).fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        return int(n)

    def stats(self) -> OutboxStats:
        """Pending and failed rows and the age of the oldest pending one, in one query."""
        try:
            with self._connect() as conn:
                pending, failed, oldest = conn.execute(
                    "SELECT COALESCE(SUM(state='pending'), 0), COALESCE(SUM(state='failed'), 0), "
                    "MIN(CASE WHEN state='pending' THEN created_at END) FROM registrations"
                ).fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        age = None if oldest is None else max(0.0, time.time() - float(oldest))
        return OutboxStats(int(pending), int(failed), age)

    @contextlib.contextmanager
    def replay_lock(self, *, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock so that two replays (threads or processes) never run concurrently.

        Yields ``True`` when held; with ``blocking=False`` it yields ``False`` at once if another
        replay holds it.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
