#!/usr/bin/env python3
"""PUT/GET throughput and p99 latency of a MinIO cluster, healthy and with one node down.

Runs from the controller against the project's own containers (the Molecule
scenario `minio`, or the lab): it reads the root credentials and the CA from
the first container, creates a scratch bucket, times sequential PUTs then GETs
of 1 MiB and 64 MiB objects, stops one node's container (docker stop), times
the same again, starts the node, waits for the cluster to be healthy, removes
the scratch bucket and prints both phases side by side. It prints figures and
asserts nothing about time.

    molecule converge -s minio
    python3 tests/bench/minio_bench.py                      # minio-1 .. minio-4
    python3 tests/bench/minio_bench.py --container hokusai-lab-minio1 --stop hokusai-lab-minio4

Standard library only: requests are signed with AWS SigV4 (UNSIGNED-PAYLOAD,
allowed over TLS), one persistent connection, objects sent sequentially.
With a handful of samples p99 is close to the maximum; read it as "worst
request seen".
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

MIB = 1024 * 1024


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        sys.exit(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class S3:
    """Minimal signed S3 client over one keep-alive connection."""

    def __init__(
        self, address: str, port: int, tls: bool, ca_file: str | None, access: str, secret: str
    ) -> None:
        self.host = f"{address}:{port}"
        self.access, self.secret = access, secret
        if tls:
            ctx = ssl.create_default_context(cafile=ca_file)
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                address, port, context=ctx, timeout=120
            )
        else:
            self.conn = http.client.HTTPConnection(address, port, timeout=120)

    def _headers(self, method: str, path: str, query: str) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": self.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                urllib.parse.quote(path, safe="/~"),
                query,
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{day}/us-east-1/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("AWS4" + self.secret).encode()
        for part in (day, "us-east-1", "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        credential = f"{self.access}/{scope}"
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    def request(
        self, method: str, path: str, body: bytes | None = None, query: str = ""
    ) -> tuple[int, bytes]:
        headers = self._headers(method, path, query)
        url = urllib.parse.quote(path, safe="/~") + (f"?{query}" if query else "")
        try:
            self.conn.request(method, url, body=body, headers=headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnect on the next request
            raise


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def run_phase(s3: S3, bucket: str, label: str, sizes: list[tuple[int, int]]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for size_mib, count in sizes:
        data = os.urandom(size_mib * MIB)
        for op in ("PUT", "GET"):
            latencies = []
            for i in range(count):
                path = f"/{bucket}/{label}/{size_mib}MiB-{i}"
                t0 = time.perf_counter()
                status, body = s3.request(op, path, data if op == "PUT" else None)
                latencies.append(time.perf_counter() - t0)
                if status != 200 or (op == "GET" and len(body) != len(data)):
                    sys.exit(f"{label}: {op} {path} answered {status}: {body[:300]!r}")
            total = sum(latencies)
            results[f"{op} {size_mib} MiB"] = {
                "count": count,
                "mib_s": size_mib * count / total,
                "p99_ms": p99(latencies) * 1000,
            }
            print(
                f"  {label:<9} {op} {size_mib:>2} MiB x {count:<3} {size_mib * count / total:8.1f} MiB/s",
                flush=True,
            )
    return results


def wait_health(s3: S3, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if s3.request("GET", f"/minio/health/{path}")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(2)
    sys.exit(f"/minio/health/{path} did not answer 200 within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--container", default="minio-1", help="container of the node the client talks to")
    parser.add_argument("--stop", default="minio-4", help="container stopped for the one-node-down phase")
    parser.add_argument("--small", type=int, default=20, help="number of 1 MiB objects (default 20)")
    parser.add_argument("--large", type=int, default=3, help="number of 64 MiB objects (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    env = {}
    for line in docker("exec", args.container, "cat", "/etc/default/minio").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value.strip('"')
    tls = env["MINIO_VOLUMES"].startswith("https://")
    address = docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", args.container
    ).split()[0]
    ca_file = None
    if tls:
        ca = tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False)  # noqa: SIM115 - kept until exit
        ca.write(docker("exec", args.container, "cat", "/etc/minio/certs/CAs/ca.crt"))
        ca.close()
        ca_file = ca.name
    s3 = S3(address, 9000, tls, ca_file, env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    sizes = [(1, args.small), (64, args.large)]
    print(f"MinIO benchmark against {args.container} ({address}), scratch bucket {bucket}", flush=True)
    status, body = s3.request("PUT", f"/{bucket}")
    if status != 200:
        sys.exit(f"creating bucket {bucket}: {status} {body[:300]!r}")
    try:
        healthy = run_phase(s3, bucket, "healthy", sizes)
        print(f"  stopping {args.stop}", flush=True)
        docker("stop", "--time", "10", args.stop)
        try:
            # Until MinIO marks the node's drives offline, a request may wait
            # on it: time that first write on its own, then the steady state.
            t0 = time.perf_counter()
            status, body = s3.request("PUT", f"/{bucket}/first-after-loss", os.urandom(MIB))
            first_put = time.perf_counter() - t0
            print(f"  first 1 MiB PUT after the node vanished: {status} in {first_put:.1f} s", flush=True)
            wait_health(s3, "cluster", 60)
            degraded = run_phase(s3, bucket, "node-down", sizes)
        finally:
            print(f"  starting {args.stop}", flush=True)
            docker("start", args.stop)
        wait_health(s3, "cluster", 180)
    finally:
        for label in ("healthy", "node-down"):
            for size_mib, count in sizes:
                for i in range(count):
                    s3.request("DELETE", f"/{bucket}/{label}/{size_mib}MiB-{i}")
        s3.request("DELETE", f"/{bucket}/first-after-loss")
        s3.request("DELETE", f"/{bucket}")
        if ca_file:
            os.unlink(ca_file)

    print()
    print(f"first 1 MiB PUT after {args.stop} stopped: {first_put:.1f} s (status {status})")
    print(f"{'':<14}{'healthy':>22}{'one node down':>26}")
    print(f"{'operation':<14}{'MiB/s':>11}{'p99 ms':>11}{'MiB/s':>13}{'p99 ms':>13}")
    for key, h in healthy.items():
        d = degraded[key]
        figures = f"{h['mib_s']:>11.1f}{h['p99_ms']:>11.0f}{d['mib_s']:>13.1f}{d['p99_ms']:>13.0f}"
        print(f"{key:<14}{figures}   (n={h['count']:.0f})")
    if args.json:
        print(json.dumps({"healthy": healthy, "one_node_down": degraded}, indent=2))


if __name__ == "__main__":
    main()
