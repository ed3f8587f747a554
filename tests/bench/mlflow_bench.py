"""Benchmark MLflow through the nginx load balancer against one instance directly.

Prints p50/p99 latency and throughput of create_experiment, create_model_version
and log_metric at 1 and 8 client threads, for each target, in the same run,
and the HA overhead (load balancer / direct) as ratios. Prints figures, asserts
nothing about time.

Runs with any Python that has the mlflow client (e.g. an MLflow host's venv):

  python mlflow_bench.py --target lb=https://mlflow-lb --target direct=http://10.0.0.5:5000 \
      --user admin --password-file /path/to/pw [--ca /path/ca.crt] [--calls 200]

Against the Molecule scenario (molecule converge -s mlflow first):

  tests/bench/run_mlflow_bench.sh
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

OPS = ("create_experiment", "create_model_version", "log_metric")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(uri: str, op: str, threads: int, calls_per_thread: int) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    tag = uuid.uuid4().hex[:8]
    exp_id = client.create_experiment(f"bench-{op}-{threads}-{tag}")
    run_id = client.create_run(exp_id).info.run_id
    model = f"bench-{tag}"
    if op == "create_model_version":
        client.create_registered_model(model)
    source = client.get_run(run_id).info.artifact_uri + "/model"
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        local = []
        for i in range(calls_per_thread):
            start = time.perf_counter()
            if op == "log_metric":
                client.log_metric(run_id, f"m{index}", float(i), step=i)
            elif op == "create_model_version":
                client.create_model_version(model, source=source, run_id=run_id)
            else:
                client.create_experiment(f"bench-e-{tag}-{index}-{i}")
            local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    wall = time.perf_counter() - wall
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "rps": len(latencies) / wall,
        "calls": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target", action="append", required=True, help="NAME=URI; the first is compared with the others"
    )
    parser.add_argument("--user", default=os.environ.get("MLFLOW_TRACKING_USERNAME", ""))
    parser.add_argument("--password-file", help="file holding the password (else MLFLOW_TRACKING_PASSWORD)")
    parser.add_argument("--ca", help="CA bundle for HTTPS targets")
    parser.add_argument(
        "--calls", type=int, default=200, help="calls per op at 1 thread (8 threads: the same total)"
    )
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--ops", default=",".join(OPS))
    args = parser.parse_args()

    if args.user:
        os.environ["MLFLOW_TRACKING_USERNAME"] = args.user
    if args.password_file:
        with open(args.password_file) as fh:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = fh.read().split()[0]
    if args.ca:
        os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = args.ca
    # Measure the servers, not the client's retry policy; keep the client quiet.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401 - configures its loggers; then silence the per-version INFO lines

    logging.getLogger("mlflow").setLevel(logging.WARNING)

    targets = [t.split("=", 1) for t in args.target]
    thread_counts = [int(t) for t in args.threads.split(",")]
    ops = args.ops.split(",")
    results: dict[tuple[str, str, int], dict] = {}
    print(f"{'op':<22}{'threads':>8}{'target':>10}{'p50 ms':>10}{'p99 ms':>10}{'calls/s':>10}")
    for op in ops:
        for threads in thread_counts:
            per_thread = max(1, args.calls // threads)
            for name, uri in targets:
                bench(uri, op, threads, 5)  # warm up connections and caches
                r = results[(op, name, threads)] = bench(uri, op, threads, per_thread)
                print(
                    f"{op:<22}{threads:>8}{name:>10}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['rps']:>10.1f}",
                    flush=True,
                )
    base = targets[0][0]
    print(f"\nratios {base} / other (p50 latency; throughput)")
    for op in ops:
        for threads in thread_counts:
            for name, _ in targets[1:]:
                a, b = results[(op, base, threads)], results[(op, name, threads)]
                print(
                    f"{op:<22}{threads:>3} threads  {base}/{name}: p50 x{a['p50_ms'] / b['p50_ms']:.2f}; "
                    f"throughput x{a['rps'] / b['rps']:.2f}"
                )


if __name__ == "__main__":
    main()
