#!/usr/bin/env python3
"""Benchmark (not a test): SDK registration overhead vs raw MlflowClient, and outbox drain time.

Starts its own ``mlflow server`` on 127.0.0.1 (SQLite backend), then

1. registers ``--n`` model versions through ``ModelRegistry.register_model`` and ``--n`` through
   raw ``MlflowClient.create_model_version`` (same payload incl. one tag), interleaved so both
   see the same server state, and prints p50/p99 of each and the SDK/raw ratio;
2. kills the server, registers ``--drain`` versions (they spool to the outbox), restarts the
   server and times ``flush()``.

Prints figures only; it never asserts on time. Run with the SDK's test venv:
    ~/.cache/hokusai/sdk-venv/bin/python scripts/bench.py
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from prometheus_client import CollectorRegistry

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy

SDK_DIR = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="registrations per client")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--drain", type=int, default=200, help="registrations to spool and drain")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.path.insert(0, str(SDK_DIR))  # the test suite's server helper, shared on purpose
    from tests.integration.mlflow_server import MlflowServer

    with tempfile.TemporaryDirectory(prefix="hokusai-bench-") as tmp:
        server = MlflowServer(Path(tmp) / "server")
        server.start()
        try:
            raw = MlflowClient(server.url)
            sdk = ModelRegistry(
                server.url,
                outbox_path=Path(tmp) / "outbox.sqlite3",
                metrics=SdkMetrics(CollectorRegistry()),
                breaker=CircuitBreaker(server.url),
            )
            raw.create_registered_model("bench-raw")
            raw.create_registered_model("bench-sdk")
            raw_t: list[float] = []
            sdk_t: list[float] = []
            for i in range(args.warmup + args.n):
                t0 = time.perf_counter()
                raw.create_model_version(
                    "bench-raw", f"s3://bench/raw/{i}", tags={"k": str(i)}, await_creation_for=0
                )
                t1 = time.perf_counter()
                sdk.register_model("bench-sdk", f"s3://bench/sdk/{i}")
                t2 = time.perf_counter()
                if i >= args.warmup:
                    raw_t.append(t1 - t0)
                    sdk_t.append(t2 - t1)
            ms = 1000.0
            print(f"registration latency over {args.n} calls each (same server, interleaved):")
            print(
                f"  raw MlflowClient   p50 {pct(raw_t, 0.5) * ms:7.2f} ms   "
                f"p99 {pct(raw_t, 0.99) * ms:7.2f} ms   mean {statistics.mean(raw_t) * ms:7.2f} ms"
            )
            print(
                f"  hokusai SDK        p50 {pct(sdk_t, 0.5) * ms:7.2f} ms   "
                f"p99 {pct(sdk_t, 0.99) * ms:7.2f} ms   mean {statistics.mean(sdk_t) * ms:7.2f} ms"
            )
            print(
                f"  SDK/raw ratio      p50 {pct(sdk_t, 0.5) / pct(raw_t, 0.5):.3f}x   "
                f"p99 {pct(sdk_t, 0.99) / pct(raw_t, 0.99):.3f}x"
            )

            # drain: spool while the server is down, then replay
            spool = ModelRegistry(
                server.url,
                outbox_path=Path(tmp) / "drain.sqlite3",
                metrics=SdkMetrics(CollectorRegistry()),
                breaker=CircuitBreaker(server.url, failure_threshold=3, reset_timeout=0.5),
                retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02),
            )
            server.stop()
            t0 = time.perf_counter()
            receipts = [
                spool.register_model("bench-drain", f"s3://bench/drain/{i}")
                for i in range(args.drain)
            ]
            spool_s = time.perf_counter() - t0
            assert all(r.pending for r in receipts), "server was down: all must spool"
            server.start()
            time.sleep(0.5)  # let the breaker half-open
            t0 = time.perf_counter()
            report = spool.flush()
            drain_s = time.perf_counter() - t0
            got = len(raw.search_model_versions("name = 'bench-drain'"))
            print(
                f"outbox: spooled {args.drain} registrations while down in {spool_s:.2f} s "
                f"({spool_s / args.drain * ms:.2f} ms each, durable commit included)"
            )
            print(
                f"outbox: drained {len(report.registered)} in {drain_s:.2f} s "
                f"({args.drain / drain_s:.1f} registrations/s); versions in MLflow: {got}; "
                f"still pending: {report.still_pending}"
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
