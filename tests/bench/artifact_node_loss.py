#!/usr/bin/env python3
"""Artifact uploads and downloads through the load balancer while a MinIO node is lost.

Against the running lab (`make lab`): WORKERS threads each upload an object of
SIZE KiB through MLflow's artifact proxy (PUT /api/2.0/mlflow-artifacts/...)
and download it back (GET, checksum compared), over and over, for SECONDS.
After LOSE_AFTER seconds one MinIO node is lost with `docker network
disconnect` (a host loss: nothing answers at its address, no reset); it is
connected again when the stream ends, whatever happens. No client retries:
every operation's own duration is recorded. Prints the longest single
operation before and after the loss, per kind, the failures, and writes every
operation as JSON (--out). Issue 21's figure: the longest operation after the
loss (goal <= 3 s). Figures, not assertions; the objects are deleted at the end.

    python3 tests/bench/artifact_node_loss.py                       # lab defaults
    python3 tests/bench/artifact_node_loss.py --node hokusai-lab-minio4 --seconds 40

Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("HOKUSAI_LAB_MLFLOW_URL", "https://172.28.10.41"))
    parser.add_argument("--ca", default=str(ROOT / ".secrets/lab-ca/ca.crt"))
    parser.add_argument("--password-file", default=str(ROOT / ".secrets/mlflow_admin_password"))
    parser.add_argument("--node", default="hokusai-lab-minio4", help="container of the MinIO node to lose")
    parser.add_argument("--node-ip", default="172.28.10.24")
    parser.add_argument("--alias", default="minio4")
    parser.add_argument("--network", default="hokusai-lab")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--lose-after", type=float, default=8)
    parser.add_argument("--timeout", type=float, default=120, help="client timeout of one operation")
    parser.add_argument("--out", default="", help="write every operation as JSON here")
    args = parser.parse_args()

    auth = (
        "Basic " + base64.b64encode(f"admin:{Path(args.password_file).read_text().strip()}".encode()).decode()
    )
    ctx = ssl.create_default_context(cafile=args.ca)
    prefix = f"bench/node-loss-{uuid.uuid4().hex[:8]}"
    ops: list[dict] = []
    lock = threading.Lock()
    end = time.time() + args.seconds

    def call(method: str, path: str, data: bytes | None = None) -> bytes:
        url = f"{args.url}/api/2.0/mlflow-artifacts/artifacts/{path}"
        req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": auth})  # noqa: S310 - https URL of the lab
        with urllib.request.urlopen(req, context=ctx, timeout=args.timeout) as resp:  # noqa: S310 - same
            return resp.read()

    def worker(w: int) -> None:
        i = 0
        while time.time() < end:
            key = f"{prefix}/w{w}-{i}.bin"
            data = os.urandom(args.size_kib * 1024)
            for op in ("PUT", "GET"):
                t0, error = time.time(), ""
                try:
                    body = call(op, key, data if op == "PUT" else None)
                    if op == "GET" and hashlib.sha256(body).digest() != hashlib.sha256(data).digest():
                        error = "checksum mismatch"
                except (urllib.error.URLError, OSError) as exc:
                    error = repr(exc)[:200]
                with lock:
                    ops.append(
                        {"op": op, "start": t0, "seconds": time.time() - t0, "error": error, "key": key}
                    )
                if error:
                    break
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.workers)]
    for t in threads:
        t.start()
    time.sleep(args.lose_after)
    lost_at = time.time()
    subprocess.run(["docker", "network", "disconnect", args.network, args.node], check=True, timeout=60)
    try:
        for t in threads:
            t.join()
    finally:
        subprocess.run(
            [
                "docker",
                "network",
                "connect",
                "--ip",
                args.node_ip,
                "--alias",
                args.alias,
                args.network,
                args.node,
            ],
            check=True,
            timeout=60,
        )
    for key in sorted({op["key"] for op in ops if op["op"] == "PUT" and not op["error"]}):
        with contextlib.suppress(urllib.error.URLError, OSError):
            call("DELETE", key)

    def report(name: str, selected: list[dict]) -> None:
        for kind in ("PUT", "GET"):
            mine = [op for op in selected if op["op"] == kind]
            if not mine:
                continue
            slowest = max(mine, key=lambda op: op["seconds"])
            failed = [op for op in mine if op["error"]]
            print(
                f"{name:<22} {kind}: {len(mine):4d} ops, {len(failed)} failed, "
                f"slowest {slowest['seconds']:6.2f} s (started {slowest['start'] - lost_at:+.1f} s)"
            )
            for op in failed[:3]:
                print(
                    f"    failed at {op['start'] - lost_at:+.1f} s after {op['seconds']:.2f} s: {op['error']}"
                )

    print(f"{args.workers} workers, {args.size_kib} KiB objects, {args.node} disconnected at +0.0 s")
    report("before the loss", [op for op in ops if op["start"] + op["seconds"] <= lost_at])
    report("in flight at/after it", [op for op in ops if op["start"] + op["seconds"] > lost_at])
    if args.out:
        Path(args.out).write_text(json.dumps({"lost_at": lost_at, "ops": ops}))


if __name__ == "__main__":
    main()
