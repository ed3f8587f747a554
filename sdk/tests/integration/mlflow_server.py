"""Start and stop a real ``mlflow server`` (SQLite or PostgreSQL backend, local artifacts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """One ``mlflow server`` in its own process group; ``stop()`` kills the whole group."""

    def __init__(
        self, workdir: Path, port: int | None = None, backend_uri: str | None = None
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.backend_uri = backend_uri or f"sqlite:///{workdir / 'mlflow.db'}"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        mlflow_bin = Path(sys.executable).parent / "mlflow"
        env = dict(os.environ)
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(mlflow_bin),
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--artifacts-destination",
                str(self.workdir / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited early, see {self.workdir}/server.log")
            try:
                # a DB-touching endpoint, so "ready" means migrations are done
                url = f"{self.url}/api/2.0/mlflow/experiments/search?max_results=1"
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 -- loopback
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server not ready in {timeout}s, see {self.workdir}/server.log")

    def stop(self) -> None:
        """SIGKILL the whole process group (server and its uvicorn worker): a real crash."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        # wait until the port is really closed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)
