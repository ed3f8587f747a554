#!/usr/bin/env python3
"""One workload process of the fault matrix (tests/chaos/chaos.py starts two per fault).

``--kind sdk``: model registrations with the SDK (``hokusai.core.ModelRegistry``: default
retry, breaker and outbox settings, the server's key index), ``--sdk-clients`` threads.

``--kind stock``: the stock MLflow client at its default settings, three threads:
``mlflow_register`` (create_model_version, each with a unique tag), ``run_logging``
(create_run, log_param, log_metric) and ``artifacts`` (log_artifact of random bytes, then
download and compare the SHA-256). It runs in its own process because the SDK changes
MLflow's HTTP retry settings process-wide.

Every call is appended to ``OUT/calls-<kind>.jsonl`` as it ends (``t0`` is
``time.monotonic()``, the same clock in every process of this machine), so the runner sees
calls even if this process dies. The workload runs until ``--stop-file`` exists (or
``--max-seconds``), then verifies what the platform holds against what callers were told
and writes ``OUT/final-<kind>.json``:

- registrations: ``lost`` = acknowledged (or spooled) keys/tags without a version, after the
  SDK's outboxes drained by themselves (no flush call); ``duplicates`` = keys/tags carrying
  more than one version;
- run logging: ``missing_metrics`` = acknowledged metric steps absent from the run's history;
- artifacts: ``lost`` = acknowledged uploads that cannot be downloaded with the same digest.

Traffic goes only to ``--tracking-uri`` (the lab's entry point). Credentials and the CA come
from MLflow's usual environment variables (the runner sets them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TAG = "chaos_tag"


class Recorder:
    """Appends one JSON line per call; thread-safe."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def call(self, workload: str, fn: Callable[[], Any], *, op: str = "") -> tuple[str, Any]:
        """Run FN, record it; return ("ok", value) or ("failed", exception text)."""
        t0 = time.monotonic()
        try:
            value = fn()
            outcome, detail = "ok", ""
        except Exception as exc:  # noqa: BLE001 - every failure the caller sees is the measure
            value, outcome, detail = None, "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
        self.write(workload, t0, time.monotonic() - t0, outcome, op=op, error=detail)
        return outcome, value if outcome == "ok" else detail

    def write(
        self, workload: str, t0: float, dur: float, outcome: str, *, op: str = "", error: str = ""
    ) -> None:
        line = {"w": workload, "t0": round(t0, 4), "dur": round(dur, 4), "outcome": outcome}
        if op:
            line["op"] = op
        if error:
            line["error"] = error
        with self._lock:
            self._fh.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self._fh.close()


class Stopper:
    def __init__(self, stop_file: Path, max_seconds: float) -> None:
        self.stop_file = stop_file
        self.deadline = time.monotonic() + max_seconds

    def stopped(self) -> bool:
        return self.stop_file.exists() or time.monotonic() > self.deadline

    def pace(self, started: float, interval: float) -> None:
        """Sleep the rest of INTERVAL since STARTED (no catch-up burst after a slow call)."""
        left = interval - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


def run_sdk(args: argparse.Namespace, rec: Recorder, stop: Stopper) -> dict:
    from hokusai.breaker import CircuitBreaker
    from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry
    from hokusai.metrics import SdkMetrics
    from prometheus_client import CollectorRegistry

    model = f"{args.name}-sdk"
    outbox_dir = Path(tempfile.mkdtemp(prefix="hokusai-chaos-"))
    breaker = CircuitBreaker(args.tracking_uri)
    registries = [
        ModelRegistry(
            args.tracking_uri,
            metrics=SdkMetrics(CollectorRegistry()),
            breaker=breaker,
            outbox_path=outbox_dir / f"client-{i}.sqlite3",
            key_index=True,
        )
        for i in range(args.sdk_clients)
    ]
    told: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []

    def client(i: int) -> None:
        n = 0
        while not stop.stopped():
            started = time.monotonic()
            key = f"{args.name}-c{i}-{n}"
            try:
                receipt = registries[i].register_model(model, f"s3://chaos/{key}", idempotency_key=key)
                outcome = "pending" if receipt.pending else "ok"
                with lock:
                    told.add(key)
                rec.write("sdk_register", started, time.monotonic() - started, outcome)
            except Exception as exc:  # noqa: BLE001 - the SDK must not raise on outages: measured
                detail = f"{type(exc).__name__}: {str(exc)[:300]}"
                rec.write("sdk_register", started, time.monotonic() - started, "failed", error=detail)
                with lock:
                    errors.append(detail)
            n += 1
            stop.pace(started, 1.0 / args.sdk_rate)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.sdk_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The outboxes drain by themselves (background drain); wait, never flush().
    drain_start = time.monotonic()
    deadline = drain_start + args.drain_timeout
    while time.monotonic() < deadline:
        if all(r.outbox is not None and r.outbox.depth() == 0 for r in registries):
            break
        time.sleep(0.5)
    still = sum(r.outbox.depth() for r in registries if r.outbox is not None)
    for r in registries:
        r.close()
    from mlflow import MlflowClient

    versions = MlflowClient(args.tracking_uri).search_model_versions(f"name = '{model}'")
    by_key = Counter(mv.tags.get(IDEMPOTENCY_TAG) for mv in versions)
    return {
        "sdk_register": {
            "told": len(told),
            "lost": len(told - set(by_key)),
            "lost_sample": sorted(told - set(by_key))[:10],
            "duplicates": sum(1 for n in by_key.values() if n > 1),
            "still_pending": still,
            "drain_s": round(time.monotonic() - drain_start, 2),
            "missing_metrics": None,
            "errors": errors[:5],
        }
    }


def run_stock(args: argparse.Namespace, rec: Recorder, stop: Stopper) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(args.tracking_uri)
    model = f"{args.name}-stock"
    results: dict[str, dict] = {}

    def setup(what: str, fn: Callable[[], Any]) -> Any:
        """Setup calls are retried until they work (bounded): they are not the measure."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return fn()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def ensure_model() -> None:
        try:
            client.create_registered_model(model)
        except Exception as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise

    setup("model", ensure_model)
    experiment_id = setup("experiment", lambda: client.create_experiment(f"{args.name}-exp"))

    def register() -> None:
        acked: set[str] = set()
        attempted: set[str] = set()
        n = 0
        while not stop.stopped():
            started = time.monotonic()
            tag = f"{args.name}-{n}-{uuid.uuid4().hex[:6]}"
            attempted.add(tag)
            outcome, _ = rec.call(
                "mlflow_register",
                lambda tag=tag: client.create_model_version(model, f"s3://chaos/{tag}", tags={TAG: tag}),
            )
            if outcome == "ok":
                acked.add(tag)
            n += 1
            stop.pace(started, 1.0 / args.stock_rate)
        versions = setup("verify", lambda: client.search_model_versions(f"name = '{model}'"))
        by_tag = Counter(mv.tags.get(TAG) for mv in versions)
        results["mlflow_register"] = {
            "told": len(acked),
            "lost": len(acked - set(by_tag)),
            "lost_sample": sorted(acked - set(by_tag))[:10],
            "duplicates": sum(1 for k, c in by_tag.items() if c > 1 and k in attempted),
            # A call reported as failed whose version exists anyway (a retry after a lost answer).
            "failed_but_registered": len((attempted - acked) & set(by_tag)),
            "missing_metrics": None,
        }

    def log_runs() -> None:
        acked: dict[str, set[int]] = {}
        run_id: str | None = None
        step = 0
        while not stop.stopped():
            started = time.monotonic()
            if run_id is None or step >= args.steps_per_run:
                outcome, value = rec.call(
                    "run_logging", lambda: client.create_run(experiment_id).info.run_id, op="create_run"
                )
                if outcome == "ok":
                    run_id, step = value, 0
                    acked[run_id] = set()
                    rec.call(
                        "run_logging",
                        lambda rid=run_id: client.log_param(rid, "fault", args.name),
                        op="log_param",
                    )
            else:
                outcome, _ = rec.call(
                    "run_logging",
                    lambda rid=run_id, s=step: client.log_metric(rid, "loss", 1.0 / (s + 1), step=s),
                    op="log_metric",
                )
                if outcome == "ok":
                    acked[run_id].add(step)
                step += 1
            stop.pace(started, 1.0 / args.logging_rate)
        missing = 0
        sample: list[str] = []
        for rid, steps in acked.items():
            history = setup("verify", lambda rid=rid: client.get_metric_history(rid, "loss"))
            gone = steps - {m.step for m in history}
            missing += len(gone)
            sample += [f"{rid}:{s}" for s in sorted(gone)[:3]]
        results["run_logging"] = {
            "told": sum(len(s) for s in acked.values()),
            "lost": 0,
            "duplicates": 0,
            "missing_metrics": missing,
            "lost_sample": sample[:10],
        }

    def artifacts() -> None:
        work = Path(tempfile.mkdtemp(prefix="hokusai-chaos-art-"))
        run_id = setup("run", lambda: client.create_run(experiment_id).info.run_id)
        acked: dict[str, str] = {}
        n = 0
        while not stop.stopped():
            started = time.monotonic()
            data = os.urandom(args.artifact_bytes)
            digest = hashlib.sha256(data).hexdigest()
            src = work / f"blob-{n}.bin"
            src.write_bytes(data)
            outcome, _ = rec.call(
                "artifacts", lambda src=src, n=n: client.log_artifact(run_id, str(src), f"a{n}"), op="upload"
            )
            src.unlink()
            if outcome == "ok":
                acked[f"a{n}/blob-{n}.bin"] = digest
            if acked:
                # Read back the newest acknowledged object, also when this upload failed:
                # reads must go on when writes cannot.
                path, want = next(reversed(acked.items()))

                def download(path: str = path, want: str = want) -> None:
                    dst = Path(tempfile.mkdtemp(dir=work))
                    got = Path(client.download_artifacts(run_id, path, str(dst))).read_bytes()
                    if hashlib.sha256(got).hexdigest() != want:
                        raise ValueError(f"checksum mismatch for {path}")

                rec.call("artifacts", download, op="download")
            n += 1
            stop.pace(started, 1.0 / args.artifact_rate)
        lost: list[str] = []
        for path, want in acked.items():
            dst = Path(tempfile.mkdtemp(dir=work))
            try:
                got = Path(
                    setup("verify", lambda p=path, d=dst: client.download_artifacts(run_id, p, str(d)))
                )
                if hashlib.sha256(got.read_bytes()).hexdigest() != want:
                    lost.append(path)
            except Exception:  # noqa: BLE001 - still missing after the bounded retries: lost
                lost.append(path)
        results["artifacts"] = {
            "told": len(acked),
            "lost": len(lost),
            "lost_sample": lost[:10],
            "duplicates": 0,
            "missing_metrics": None,
        }

    threads = [threading.Thread(target=fn, daemon=True) for fn in (register, log_runs, artifacts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=("sdk", "stock"), required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--name", required=True, help="unique prefix of this segment's models and tags")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--sdk-clients", type=int, default=2)
    parser.add_argument("--sdk-rate", type=float, default=2.0, help="registrations/s per SDK client")
    parser.add_argument("--stock-rate", type=float, default=2.0)
    parser.add_argument("--logging-rate", type=float, default=4.0)
    parser.add_argument("--steps-per-run", type=int, default=25)
    parser.add_argument("--artifact-rate", type=float, default=0.5)
    parser.add_argument("--artifact-bytes", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(args.out / f"calls-{args.kind}.jsonl")
    stop = Stopper(args.stop_file, args.max_seconds)
    final = args.out / f"final-{args.kind}.json"
    try:
        results = run_sdk(args, rec, stop) if args.kind == "sdk" else run_stock(args, rec, stop)
        final.write_text(json.dumps({"ok": True, "workloads": results}))
    except Exception as exc:  # the runner reports a workload that died
        final.write_text(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        raise
    finally:
        rec.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
