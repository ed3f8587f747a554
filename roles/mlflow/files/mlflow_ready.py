"""Readiness of one MLflow instance, beyond MLflow's own /health.

MLflow's /health answers OK without touching the database or the artifact
store. This probe proves what a request needs:
  database   connect, and the schema is at the revision this release expects
  artifacts  write, read back and delete a small object in the artifact bucket
  server     the local instance answers /health
One shot (exit 0 = ready, JSON report on stdout), or with --listen ADDR:PORT
an HTTP endpoint (GET /ready: 200 or 503 with the same JSON) for load
balancers and monitoring; with --agent ADDR:PORT also HAProxy's agent-check
protocol (the load balancer's instance pool: weight 100% when ready, 0% when
not, so in-flight requests finish). The endpoint answers at once from checks that run
in the background (every --interval seconds, each in its own thread); a check
still running after --slow-after seconds counts as failed. GET
/ready?checks=artifacts,server asks about those checks only (the load
balancer's artifact pool does not depend on the database). GET
/writes-refused answers 200 while the artifact store refuses this instance's
probe writes for want of write quorum (MinIO SlowDownWrite, last result at
most 5 s old), 204 otherwise: the load balancer then refuses uploads at once.
Configuration comes from the instance's environment file:
  MLFLOW_BACKEND_STORE_URI, MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, HOKUSAI_ARTIFACTS_BUCKET, HOKUSAI_ARTIFACTS_PREFIX,
  HOKUSAI_HEALTH_URL, HOKUSAI_INSTANCE_NAME.
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Created on first use and kept: the checks repeat every second, and building
# a boto3 client (service model files) or reading the migration scripts each
# time cost more CPU than the checks themselves.
_ENGINE = None  # sqlalchemy Engine
_S3 = None  # boto3 S3 client (thread-safe; keeps its connections)
_SCHEMA_HEAD: str | None = None  # the schema revision this MLflow release expects


class WritesRefused(RuntimeError):
    """The artifact store answered a write with a refusal for want of write quorum."""


def _run(check) -> tuple[dict, Exception | None]:
    """The check's result ({ok, detail, ms}) and the exception it raised, if any."""
    start = time.monotonic()
    error = None
    try:
        detail = check()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; report it
        detail, error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300], exc
    return {"ok": error is None, "detail": detail, "ms": round((time.monotonic() - start) * 1000, 1)}, error


def _timed(check) -> dict:
    return _run(check)[0]


def check_database() -> str:
    global _ENGINE, _SCHEMA_HEAD
    import sqlalchemy
    from mlflow.store.db.utils import _get_latest_schema_revision

    if _ENGINE is None:
        _ENGINE = sqlalchemy.create_engine(
            os.environ["MLFLOW_BACKEND_STORE_URI"],
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3},
        )
    with _ENGINE.connect() as conn:
        current = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    if _SCHEMA_HEAD is None or current != _SCHEMA_HEAD:
        # Read again on a mismatch: an upgrade of the installed MLflow (new
        # migration scripts on disk, database migrated) must not leave this
        # long-running probe comparing against the old release's head.
        _SCHEMA_HEAD = _get_latest_schema_revision()
    head = _SCHEMA_HEAD
    if current != head:
        raise RuntimeError(f"schema at {current}, this release expects {head}: run mlflow db upgrade")
    return f"schema {current}"


def check_artifacts() -> str:
    global _S3
    if _S3 is None:
        import boto3
        from botocore.config import Config

        _S3 = boto3.client(
            "s3",
            endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
            config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}),
        )
    s3 = _S3
    bucket = os.environ["HOKUSAI_ARTIFACTS_BUCKET"]
    prefix = os.environ.get("HOKUSAI_ARTIFACTS_PREFIX", "").strip("/")
    name = os.environ.get("HOKUSAI_INSTANCE_NAME", "instance")
    key = "/".join(p for p in (prefix, ".hokusai-readiness", name) if p)
    body = f"{name} {time.time()}".encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except Exception as exc:
        # MinIO answers SlowDownWrite (503) for exactly one cause: the erasure
        # set lacks write quorum (InsufficientWriteQuorum, errErasureWriteQuorum).
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "SlowDownWrite":
            why = "the artifact store refuses writes (MinIO write quorum lost)"
            raise WritesRefused(f"{why}: {exc}") from exc
        raise
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=bucket, Key=key)
    if got != body:
        raise RuntimeError("object read back differs from what was written")
    return f"s3://{bucket}/{key} written, read, deleted"


def check_server() -> str:
    url = os.environ["HOKUSAI_HEALTH_URL"]
    with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - local URL from config
        body = resp.read().decode().strip()
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}")
    return f"{url}: {body}"


def probe() -> dict:
    checks = {name: _timed(check) for name, check in CHECKS.items()}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


class Prober:
    """Runs every check in its own loop; answers from the latest results at once.

    A load balancer asks every second from every LB host: the answer must not
    wait for the database or MinIO. Each check repeats every `interval`
    seconds in its own thread, so a hung dependency (a blackholed database
    host takes connect_timeout to fail) neither delays the answer nor hides
    the others. A check that has been running longer than `slow_after`
    counts as failed while it runs: an instance whose database calls hang is
    not ready, whatever its last finished result said. A result older than
    `stale_after` (the loop itself is stuck) counts as failed too.
    """

    def __init__(
        self,
        checks,
        interval: float = 1.0,
        slow_after: float = 1.0,
        stale_after: float = 10.0,
        clock=time.monotonic,
    ) -> None:
        self.checks, self.interval, self.slow_after, self.stale_after = (
            checks,
            interval,
            slow_after,
            stale_after,
        )
        self.clock = clock
        self.lock = threading.Lock()
        self.results: dict[str, dict] = {}
        self.finished_at: dict[str, float] = {}
        self.running_since: dict[str, float | None] = {name: None for name in checks}
        self.refused: dict[str, bool] = {}  # check -> its last result was a WritesRefused

    def run_once(self, name: str) -> None:
        with self.lock:
            self.running_since[name] = self.clock()
        result, error = _run(self.checks[name])
        with self.lock:
            self.results[name], self.finished_at[name], self.running_since[name] = result, self.clock(), None
            self.refused[name] = isinstance(error, WritesRefused)

    def writes_refused(self, name: str = "artifacts", fresh_within: float = 5.0) -> str | None:
        """Why writes are refused, when the last result of `name` was a refusal at most `fresh_within` s old.

        The load balancer answers uploads at once with a 503 that says why
        while an instance reports this (roles/nginx_lb). Only a definite
        refusal by the store counts: a slow, hung or otherwise failed check,
        no result yet or an old one all answer None (uploads go through and
        MinIO decides), so a stuck probe cannot keep uploads refused.
        """
        with self.lock:
            if not self.refused.get(name):
                return None
            if self.clock() - self.finished_at[name] > fresh_within:
                return None
            return self.results[name]["detail"]

    def start(self) -> None:
        def loop(name: str) -> None:
            while True:
                self.run_once(name)
                time.sleep(self.interval)

        for name in self.checks:
            threading.Thread(target=loop, args=(name,), name=f"check-{name}", daemon=True).start()

    def report(self, names=None) -> dict:
        """Readiness from the latest results of `names` (default: every check)."""
        now = self.clock()
        out = {}
        with self.lock:
            for name in names or self.checks:
                result, since = self.results.get(name), self.running_since.get(name)
                if since is not None and now - since > self.slow_after:
                    out[name] = {
                        "ok": False,
                        "detail": f"check running for {now - since:.1f} s (slow or hung dependency)",
                        "ms": round((now - since) * 1000, 1),
                    }
                elif result is None:
                    out[name] = {"ok": False, "detail": "not checked yet", "ms": 0.0}
                elif (age := now - self.finished_at[name]) > self.stale_after:
                    out[name] = {
                        **result,
                        "ok": False,
                        "detail": f"last result is {age:.0f} s old: {result['detail']}",
                    }
                else:
                    out[name] = result
        return {"ready": bool(out) and all(c["ok"] for c in out.values()), "checks": out}


def parse_checks(query: str, known) -> list[str] | None:
    """`checks=artifacts,server` from a query string; None = every check. Unknown names raise ValueError."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "checks" and value:
            names = [n for n in value.split(",") if n]
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(f"unknown checks {unknown}; known: {sorted(known)}")
            return names
    return None


CHECKS = {"database": check_database, "artifacts": check_artifacts, "server": check_server}


def agent_reply(request: str, prober: Prober) -> str:
    """The answer to one HAProxy agent-check request (a line naming the checks, e.g. "database,server").

    Ready: full weight. Not ready: weight 0, so the load balancer sends the
    instance no new requests while those it holds finish (a database or
    MinIO blip must not cut requests that would have succeeded); when every
    instance is at weight 0 the load balancer uses its fallback entries.
    The text after '#' is what HAProxy logs as the reason.
    """
    line = request.strip()
    try:
        names = parse_checks(f"checks={line}", CHECKS) if line else None
    except ValueError as exc:
        return f"0% #{exc}\n"
    report = prober.report(names)
    if report["ready"]:
        return "100%\n"
    failed = "; ".join(f"{name}: {c['detail']}" for name, c in report["checks"].items() if not c["ok"])
    return f"0% #not ready: {failed}"[:300].replace("\n", " ") + "\n"


def serve_agent(listen: str, prober: Prober) -> None:
    """HAProxy's agent-check protocol on ADDR:PORT: read one line, answer one line, close."""
    host, _, port = listen.rpartition(":")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            # HAProxy sends its agent-send string at once on connect (or nothing).
            self.request.settimeout(0.5)
            try:
                request = self.request.recv(256).decode(errors="replace")
            except TimeoutError:
                request = ""
            except OSError:
                return
            self.request.sendall(agent_reply(request.splitlines()[0] if request else "", prober).encode())

    server = socketserver.ThreadingTCPServer((host, int(port)), Handler, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    server.serve_forever()


def serve(listen: str, interval: float, slow_after: float, agent: str | None = None) -> None:
    host, _, port = listen.rpartition(":")
    prober = Prober(CHECKS, interval=interval, slow_after=slow_after)
    prober.start()
    if agent:
        threading.Thread(target=serve_agent, args=(agent, prober), name="agent", daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/writes-refused":
                # 200 while the artifact store refuses writes (MinIO write
                # quorum lost), 204 otherwise: the load balancer's check.
                detail = prober.writes_refused()
                if detail is None:
                    self.send_response(204)
                    self.end_headers()
                    return
                body = json.dumps({"refused": True, "detail": detail}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path not in ("/ready", "/"):
                self.send_error(404)
                return
            try:
                names = parse_checks(query, CHECKS)
            except ValueError as exc:
                self.send_error(400, str(exc))
                return
            report = prober.report(names)
            body = json.dumps(report).encode()
            self.send_response(200 if report["ready"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # quiet: probes are frequent
            pass

    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", help="serve GET /ready on ADDR:PORT instead of probing once")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between runs of each check (--listen)"
    )
    parser.add_argument(
        "--slow-after",
        type=float,
        default=1.0,
        help="a check still running after this many seconds counts as failed (--listen)",
    )
    parser.add_argument(
        "--agent", help="also answer HAProxy agent checks on ADDR:PORT: 100%% ready, 0%% not (--listen)"
    )
    parser.add_argument("--cache", type=float, help=argparse.SUPPRESS)  # accepted from older unit files
    args = parser.parse_args()
    if args.listen:
        serve(args.listen, args.interval, args.slow_after, args.agent)
        return 0
    report = probe()
    print(json.dumps(report))
    return 0 if report["ready"] else 1


if __name__ == "__main__":
    sys.exit(main())
