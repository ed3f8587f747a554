"""A checksummed stream of artifact uploads and downloads through the entry point.

Used by tests/e2e/test_artifact_node_loss.py (assertions) and
tests/bench/artifact_node_loss.py (figures). Each worker thread, over and over:
uploads a new object of random bytes through MLflow's artifact proxy
(PUT /api/2.0/mlflow-artifacts/artifacts/...), then downloads one back (the
object it has just uploaded, or when that upload was refused one it uploaded
earlier) and compares its sha256. No retries: every operation's own duration
and outcome is recorded, as the first call of a client would see it.

Standard library only (it runs in the SDK's venv and with a bare python3).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import http.client
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Op:
    kind: str  # PUT or GET
    key: str
    start: float  # time.time()
    seconds: float
    status: int  # HTTP status; 0 when no answer came
    error: str  # "" when the operation succeeded

    @property
    def end(self) -> float:
        return self.start + self.seconds


@dataclass
class ArtifactStream:
    url: str
    ca: str
    username: str
    password: str
    prefix: str
    workers: int = 4
    size: int = 1 << 20
    timeout: float = 120.0
    pause: float = 0.0
    ops: list[Op] = field(default_factory=list)
    acknowledged: dict[str, bytes] = field(default_factory=dict)  # key -> sha256 of what was sent
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        self._auth = f"Basic {token}"
        self._ctx = ssl.create_default_context(cafile=self.ca)

    def call(self, method: str, key: str, data: bytes | None = None) -> tuple[int, bytes]:
        """One request; (status, body). HTTP errors are returned, not raised."""
        url = f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{key}"
        req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": self._auth})  # noqa: S310 - https URL of the lab
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=self.timeout) as resp:  # noqa: S310 - same
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _record(self, kind: str, key: str, data: bytes | None, digest: bytes) -> bool:
        t0 = time.time()
        status, error = 0, ""
        try:
            status, body = self.call(kind, key, data)
            if status != 200:
                error = f"HTTP {status}: {body[:300].decode(errors='replace')}"
            elif kind == "GET" and hashlib.sha256(body).digest() != digest:
                error = f"checksum mismatch ({len(body)} bytes)"
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, cut bodies
            error = repr(exc)[:300]
        with self._lock:
            self.ops.append(Op(kind, key, t0, time.time() - t0, status, error))
            if kind == "PUT" and not error:
                self.acknowledged[key] = digest
        return not error

    def _worker(self, w: int) -> None:
        mine: list[str] = []
        i = 0
        while not self._stop.is_set():
            key = f"{self.prefix}/w{w}-{i}.bin"
            data = os.urandom(self.size)
            digest = hashlib.sha256(data).digest()
            if self._record("PUT", key, data, digest):
                mine.append(key)
            elif mine:
                key = random.choice(mine)  # noqa: S311 - not for security
            else:
                key = ""
            if key:
                self._record("GET", key, None, self.acknowledged[key])
            i += 1
            if self.pause:
                self._stop.wait(self.pause)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._worker, args=(w,), daemon=True) for w in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 10)

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)

    def verify(self, keys: list[str] | None = None) -> dict[str, str]:
        """Download every acknowledged object (or those of `keys`): key -> what is missing or differs."""
        problems = {}
        with self._lock:
            wanted = {k: self.acknowledged[k] for k in (self.acknowledged if keys is None else keys)}
        for key, digest in sorted(wanted.items()):
            status, body = self.call("GET", key)
            if status != 200:
                problems[key] = f"HTTP {status}: {body[:200].decode(errors='replace')}"
            elif hashlib.sha256(body).digest() != digest:
                problems[key] = "checksum mismatch"
        return problems

    def delete_all(self) -> None:
        def delete(key: str) -> None:
            with contextlib.suppress(OSError):
                self.call("DELETE", key)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(delete, list(self.acknowledged)))


def slowest(ops: list[Op], kind: str) -> Op | None:
    mine = [op for op in ops if op.kind == kind]
    return max(mine, key=lambda op: op.seconds) if mine else None


def summary(name: str, ops: list[Op], since: float) -> list[str]:
    """One line per kind: count, failures, slowest (start relative to `since`)."""
    lines = []
    for kind in ("PUT", "GET"):
        mine = [op for op in ops if op.kind == kind]
        if not mine:
            continue
        worst = max(mine, key=lambda op: op.seconds)
        failed = [op for op in mine if op.error]
        lines.append(
            f"{name:<26} {kind}: {len(mine):4d} ops, {len(failed):3d} failed, "
            f"slowest {worst.seconds:6.2f} s (started {worst.start - since:+.1f} s)"
        )
        lines.extend(
            f"    failed at {op.start - since:+.1f} s after {op.seconds:.2f} s: {op.error}"
            for op in failed[:3]
        )
    return lines
