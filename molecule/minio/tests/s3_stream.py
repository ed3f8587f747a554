#!/usr/bin/env python3
"""A stream of signed S3 PUTs and GETs with checksums, run on a MinIO node (standard library only).

Used by test_minio.py: it runs inside a container next to tests/bench/minio_bench.py
(its S3 client), writes <OUT without .json>.started once the stream is going, keeps
WORKERS persistent connections busy for SECONDS (each PUT a fresh random object, each
GET a read-back of one written before), then reads every acknowledged object back and
writes the outcome as JSON: every operation's start, duration (retries included),
attempts, status, error, and the acknowledged objects that came back missing or
different.

    s3_stream.py SECONDS WORKERS SIZE_MIB OUT BUCKET PREFIX [PORT [RETRIES]]

PORT (default 9000, MinIO itself) may be the local S3 endpoint (role
s3_endpoint); RETRIES (default 0) is how often an operation whose connection
failed (reset, closed: what the endpoint does to the sessions of a node it marks
down) is sent again on a new connection, as botocore, pgBackRest and mc do.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minio_bench import S3

MIB = 1024 * 1024


def main() -> None:
    seconds, workers, size_mib, out = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    bucket, prefix = sys.argv[5], sys.argv[6]
    port = int(sys.argv[7]) if len(sys.argv) > 7 else 9000
    retries = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    started = os.path.splitext(out)[0] + ".started"
    env = {}
    with open("/etc/default/minio") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.strip().split("=", 1)
                env[key] = value.strip('"')

    def client() -> S3:
        s3 = S3(
            "127.0.0.1",
            port,
            True,
            "/etc/minio/certs/CAs/ca.crt",
            env["MINIO_ROOT_USER"],
            env["MINIO_ROOT_PASSWORD"],
        )
        s3.conn.timeout = 90
        return s3

    ops: list[dict] = []
    acked: dict[str, str] = {}
    lock = threading.Lock()
    end = time.time() + seconds

    def worker(w: int) -> None:
        s3, i, last = client(), 0, None
        while time.time() < end:
            for op in ("PUT", "GET"):
                key = f"/{bucket}/{prefix}/w{w}-{i}" if op == "PUT" else last
                if key is None:
                    continue
                data = os.urandom(size_mib * MIB) if op == "PUT" else None
                t0, attempts = time.time(), 0
                while True:
                    attempts, status, error = attempts + 1, 0, ""
                    try:
                        status, body = s3.request(op, key, data)
                        if status != 200:
                            error = body[:200].decode(errors="replace")
                        elif op == "GET" and hashlib.sha256(body).hexdigest() != acked[key]:
                            error = "checksum mismatch"
                        break
                    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none hidden
                        error = repr(exc)[:200]
                        s3 = client()
                        if attempts > retries:
                            break
                with lock:
                    ops.append(
                        {"op": op, "start": t0, "seconds": time.time() - t0, "attempts": attempts,
                         "status": status, "error": error}
                    )  # fmt: skip
                    if op == "PUT" and status == 200:
                        acked[key] = hashlib.sha256(data).hexdigest()
                        last = key
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    with open(started, "w") as f:
        f.write(str(time.time()))
    for t in threads:
        t.join()
    s3, lost, corrupt = client(), [], []
    for key, digest in acked.items():
        status, body = s3.request("GET", key)
        if status != 200:
            lost.append(key)
        elif hashlib.sha256(body).hexdigest() != digest:
            corrupt.append(key)
    with open(out + ".tmp", "w") as f:
        json.dump({"ops": ops, "acked": len(acked), "lost": lost, "corrupt": corrupt}, f)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
