"""A continuous stream of MLflow REST calls through the load balancer, counting failures.

Standard library only (urllib, threads), no client-side retries: every failed
HTTP call is counted, so the failure tests measure what the platform does,
not what MLflow's client would paper over with its own retries.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ClientStream", "StreamResult"]


@dataclass
class StreamResult:
    reads_ok: int = 0
    reads_failed: int = 0
    writes_ok: int = 0
    writes_failed: int = 0
    failures: Counter = field(default_factory=Counter)

    def since(self, earlier: StreamResult) -> StreamResult:
        """The calls counted after `earlier` (a snapshot of the same stream)."""
        return StreamResult(
            self.reads_ok - earlier.reads_ok,
            self.reads_failed - earlier.reads_failed,
            self.writes_ok - earlier.writes_ok,
            self.writes_failed - earlier.writes_failed,
            self.failures - earlier.failures,
        )

    def summary(self) -> str:
        return (
            f"reads ok={self.reads_ok} failed={self.reads_failed}; "
            f"writes ok={self.writes_ok} failed={self.writes_failed}; failures={dict(self.failures)}"
        )


class ClientStream:
    """READERS threads GET an experiment, WRITERS threads POST log-metric, until stopped."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        cafile: str,
        host_header: str,
        experiment_name: str,
        run_id: str,
        readers: int = 3,
        writers: int = 2,
        pause: float = 0.02,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "Host": host_header,
            "Content-Type": "application/json",
        }
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.check_hostname = False  # we connect by address; the chain is still verified
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.readers, self.writers, self.pause = readers, writers, pause
        self.result = StreamResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._step = 0

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        url = self.base_url + path
        req = urllib.request.Request(url, data=data, headers=self.headers, method=method)  # noqa: S310 - https URL we built
        with urllib.request.urlopen(req, timeout=30, context=self.ctx) as resp:  # noqa: S310 - scenario container
            return json.loads(resp.read() or b"{}")

    def snapshot(self) -> StreamResult:
        """A copy of the counts so far (taken under the lock)."""
        with self._lock:
            r = self.result
            return StreamResult(r.reads_ok, r.reads_failed, r.writes_ok, r.writes_failed, Counter(r.failures))

    def _record(self, kind: str, error: str | None) -> None:
        with self._lock:
            if error is None:
                setattr(self.result, f"{kind}_ok", getattr(self.result, f"{kind}_ok") + 1)
            else:
                setattr(self.result, f"{kind}_failed", getattr(self.result, f"{kind}_failed") + 1)
                self.result.failures[f"{kind}: {error}"] += 1

    def _one(self, kind: str) -> None:
        try:
            if kind == "reads":
                self.call(
                    "GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={self.experiment_name}"
                )
            else:
                with self._lock:
                    self._step += 1
                    step = self._step
                body = {
                    "run_id": self.run_id,
                    "key": "stream",
                    "value": step,
                    "timestamp": int(time.time() * 1000),
                    "step": step,
                }
                self.call("POST", "/api/2.0/mlflow/runs/log-metric", body)
        except urllib.error.HTTPError as exc:
            self._record(kind, f"HTTP {exc.code}")
        except Exception as exc:  # noqa: BLE001 - any failure of a call is what we count
            self._record(kind, type(exc).__name__)
        else:
            self._record(kind, None)

    def _loop(self, kind: str) -> None:
        while not self._stop.is_set():
            self._one(kind)
            time.sleep(self.pause)

    def __enter__(self) -> ClientStream:
        for kind, count in (("reads", self.readers), ("writes", self.writers)):
            for _ in range(count):
                thread = threading.Thread(target=self._loop, args=(kind,), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
