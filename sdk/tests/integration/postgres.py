"""A throw-away PostgreSQL cluster on 127.0.0.1 (initdb into a temp dir), for MLflow's backend.

Uses the Debian binaries (``/usr/lib/postgresql/<v>/bin``) or whatever ``pg_ctl`` is on PATH.
As root, the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root).
``kill()`` is a crash (SIGKILL of the postmaster's process group), ``start()`` brings the same
data directory back on the same port, with crash recovery.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .mlflow_server import free_port


def postgres_bindir() -> Path | None:
    """Directory with initdb/postgres, or ``None`` when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    return Path(versions[0]).parent if versions else None


class LocalPostgres:
    def __init__(self, workdir: Path, bindir: Path) -> None:
        self.workdir = workdir
        self.bindir = bindir
        self.datadir = workdir / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/mlflow"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_root else list(argv)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.start()
        subprocess.run(
            self._cmd(
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE mlflow",
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self, timeout: float = 60.0) -> None:
        log = (self.workdir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._cmd(
                str(self.bindir / "postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.workdir),
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=60",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited early, see {self.workdir}/postgres.log")
            done = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready in {timeout}s, see {self.workdir}/postgres.log")

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and every backend."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        # backends are in the same session; make sure none survives holding the port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if done.returncode == 2:  # no response: down
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self.kill()
