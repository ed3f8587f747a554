#!/usr/bin/env python3
"""Benchmark (not a test): SDK registration overhead vs raw MlflowClient, and outbox drain time.

Starts its own ``mlflow server`` on 127.0.0.1 (SQLite backend) with the unique key index the
MLflow role creates after migrations (``roles/mlflow/files/mlflow_db_migrate.py``), then

1. registers ``--n`` model versions each through raw ``MlflowClient.create_model_version``, the
   SDK with a fresh key and the SDK with a caller-supplied key (``key_index=True``), interleaved
   so all see the same server state, and prints p50/p99 of each and the SDK/raw ratios;
2. counts the HTTP requests per registration through a loopback proxy: fresh key, caller key
   with the index, caller key without it (``key_index=False``: lookup, create, converge check);
3. kills the server, registers ``--drain`` versions (they spool to the outbox), restarts the
   server and times the *background* drain (no ``flush()`` call) until the outbox is empty.

Prints figures only; it never asserts on time. Run with the SDK's test venv:
    ~/.cache/hokusai/sdk-venv/bin/python scripts/bench.py
"""

from __future__ import annotations

import argparse
import importlib.util
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
MIGRATE = SDK_DIR.parent / "roles" / "mlflow" / "files" / "mlflow_db_migrate.py"


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
    from tests.integration.proxy import FlakyProxy

    spec = importlib.util.spec_from_file_location("mlflow_db_migrate", MIGRATE)
    assert spec is not None
    assert spec.loader is not None
    migrate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migrate)

    with tempfile.TemporaryDirectory(prefix="hokusai-bench-") as tmp:
        server = MlflowServer(Path(tmp) / "server")
        server.start()
        index = migrate.ensure_key_index(server.backend_uri)
        try:
            raw = MlflowClient(server.url)

            def sdk_client(url: str, outbox: str, **kw: object) -> ModelRegistry:
                return ModelRegistry(  # type: ignore[misc]
                    url,
                    outbox_path=Path(tmp) / outbox,
                    metrics=SdkMetrics(CollectorRegistry()),
                    breaker=CircuitBreaker(url),
                    **kw,
                )

            sdk = sdk_client(server.url, "outbox.sqlite3", key_index=True)
            for name in ("bench-raw", "bench-sdk", "bench-key"):
                raw.create_registered_model(name)
            timings: dict[str, list[float]] = {"raw": [], "sdk": [], "key": []}
            for i in range(args.warmup + args.n):
                t0 = time.perf_counter()
                raw.create_model_version(
                    "bench-raw", f"s3://bench/raw/{i}", tags={"k": str(i)}, await_creation_for=0
                )
                t1 = time.perf_counter()
                sdk.register_model("bench-sdk", f"s3://bench/sdk/{i}")
                t2 = time.perf_counter()
                sdk.register_model("bench-key", f"s3://bench/key/{i}", idempotency_key=f"run-{i}")
                t3 = time.perf_counter()
                if i >= args.warmup:
                    timings["raw"].append(t1 - t0)
                    timings["sdk"].append(t2 - t1)
                    timings["key"].append(t3 - t2)
            ms = 1000.0
            print(f"key index: {index}")
            print(f"registration latency over {args.n} calls each (same server, interleaved):")
            labels = {
                "raw": "raw MlflowClient          ",
                "sdk": "SDK, fresh key            ",
                "key": "SDK, caller key, index    ",
            }
            for k, label in labels.items():
                t = timings[k]
                print(
                    f"  {label} p50 {pct(t, 0.5) * ms:7.2f} ms   p99 {pct(t, 0.99) * ms:7.2f} ms"
                    f"   mean {statistics.mean(t) * ms:7.2f} ms"
                )
            for k in ("sdk", "key"):
                print(
                    f"  {labels[k].strip()} / raw   p50 "
                    f"{pct(timings[k], 0.5) / pct(timings['raw'], 0.5):.3f}x   p99 "
                    f"{pct(timings[k], 0.99) / pct(timings['raw'], 0.99):.3f}x"
                )

            # requests per healthy registration, counted at a loopback proxy
            proxy = FlakyProxy(server.port)
            try:
                for label, key_index, caller_key in (
                    ("fresh key", True, False),
                    ("caller key, server has the index", True, True),
                    ("caller key, no index (lookup, create, converge check)", False, True),
                ):
                    client = sdk_client(
                        proxy.url, f"count-{key_index}.sqlite3", key_index=key_index
                    )
                    client.register_model("bench-count", "s3://bench/count/warm")
                    proxy.requests.clear()
                    for i in range(20):
                        client.register_model(
                            "bench-count",
                            f"s3://bench/count/{label}/{i}",
                            idempotency_key=f"{label[:5]}-{key_index}-{i}".replace(" ", "")
                            if caller_key
                            else None,
                        )
                    print(f"requests per registration, {label}: {len(proxy.requests) / 20:.2f}")
            finally:
                proxy.close()

            # drain: spool while the server is down, then let the background drain replay
            spool = sdk_client(
                server.url,
                "drain.sqlite3",
                key_index=True,
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
            up = time.perf_counter()
            assert spool.outbox is not None
            while spool.outbox.depth() and time.perf_counter() - up < 300:
                time.sleep(0.05)
            drain_s = time.perf_counter() - up
            spool.close()
            got = len(raw.search_model_versions("name = 'bench-drain'"))
            print(
                f"outbox: spooled {args.drain} registrations while down in {spool_s:.2f} s "
                f"({spool_s / args.drain * ms:.2f} ms each, durable commit included)"
            )
            print(
                f"outbox: background drain emptied it {drain_s:.2f} s after the server was back "
                f"(no flush() call; {args.drain / drain_s:.1f} registrations/s); versions in "
                f"MLflow: {got}; still pending: {spool.outbox.depth()}"
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
