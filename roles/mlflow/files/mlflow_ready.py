"""Readiness of one MLflow instance, beyond MLflow's own /health.

MLflow's /health answers OK without touching the database or the artifact
store. This probe proves what a request needs:
  database   connect, and the schema is at the revision this release expects
  artifacts  write, read back and delete a small object in the artifact bucket
  server     the local instance answers /health
One shot (exit 0 = ready, JSON report on stdout), or with --listen ADDR:PORT
an HTTP endpoint (GET /ready: 200 or 503 with the same JSON) for load
balancers and monitoring; results are cached for --cache seconds.
Configuration comes from the instance's environment file:
  MLFLOW_BACKEND_STORE_URI, MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, HOKUSAI_ARTIFACTS_BUCKET, HOKUSAI_ARTIFACTS_PREFIX,
  HOKUSAI_HEALTH_URL, HOKUSAI_INSTANCE_NAME.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy

_ENGINE: sqlalchemy.engine.Engine | None = None


def _timed(check):
    start = time.monotonic()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; report it
        detail, ok = f"{type(exc).__name__}: {exc}".splitlines()[0][:300], False
    return {"ok": ok, "detail": detail, "ms": round((time.monotonic() - start) * 1000, 1)}


def check_database() -> str:
    global _ENGINE
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
    head = _get_latest_schema_revision()
    if current != head:
        raise RuntimeError(f"schema at {current}, this release expects {head}: run mlflow db upgrade")
    return f"schema {current}"


def check_artifacts() -> str:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
        config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}),
    )
    bucket = os.environ["HOKUSAI_ARTIFACTS_BUCKET"]
    prefix = os.environ.get("HOKUSAI_ARTIFACTS_PREFIX", "").strip("/")
    name = os.environ.get("HOKUSAI_INSTANCE_NAME", "instance")
    key = "/".join(p for p in (prefix, ".hokusai-readiness", name) if p)
    body = f"{name} {time.time()}".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
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
    checks = {
        "database": _timed(check_database),
        "artifacts": _timed(check_artifacts),
        "server": _timed(check_server),
    }
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


class _Cache:
    def __init__(self, ttl: float) -> None:
        self.ttl, self.at, self.value, self.lock = ttl, 0.0, None, threading.Lock()

    def get(self) -> dict:
        with self.lock:
            if self.value is None or time.monotonic() - self.at > self.ttl:
                self.value, self.at = probe(), time.monotonic()
            return self.value


def serve(listen: str, ttl: float) -> None:
    host, _, port = listen.rpartition(":")
    cache = _Cache(ttl)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/ready", "/"):
                self.send_error(404)
                return
            report = cache.get()
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
    parser.add_argument("--cache", type=float, default=2.0, help="seconds a result is reused (--listen)")
    args = parser.parse_args()
    if args.listen:
        serve(args.listen, args.cache)
        return 0
    report = probe()
    print(json.dumps(report))
    return 0 if report["ready"] else 1


if __name__ == "__main__":
    sys.exit(main())
