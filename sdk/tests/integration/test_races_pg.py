"""Exactly one version per key under races, against a real MLflow server on real PostgreSQL.

The database has the unique key index created by the MLflow role's post-migration step
(roles/mlflow/files/mlflow_db_migrate.py, run here exactly as the role runs it). Each test
fails without the feature it covers: threads and a second process with one key, a create that
MLflow commits after the client gave up, a flush racing a live registration, a PostgreSQL crash
(the breaker must probe within seconds and the background drain must empty the outbox).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hokusai.breaker import CircuitBreaker
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry, Registration
from hokusai.metrics import SdkMetrics
from hokusai.resilience import RetryPolicy

from .conftest import PgMlflow
from .mlflow_server import MlflowServer
from .proxy import FlakyProxy

pytestmark = pytest.mark.integration

SDK_DIR = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2, deadline=15)


def keys_of(url: str, name: str) -> Counter[str]:
    versions = MlflowClient(url).search_model_versions(f"name = '{name}'")
    return Counter(mv.tags.get(IDEMPOTENCY_TAG, "") for mv in versions)


def registry(url: str, metrics: SdkMetrics, outbox: Path, **kw: object) -> ModelRegistry:
    kw.setdefault("breaker", CircuitBreaker(url, failure_threshold=50, reset_timeout=0.2))
    kw.setdefault("retry_policy", FAST)
    kw.setdefault("auto_drain", False)
    kw.setdefault("key_index", True)
    return ModelRegistry(url, metrics=metrics, outbox_path=outbox, **kw)  # type: ignore[arg-type]


def race(url: str, reg: ModelRegistry, name: str, key: str, outbox: Path, key_index: bool) -> None:
    """8 threads here and 8 in a second process register (name, key) at the same instant."""
    start_at = time.time() + 4.0  # the other interpreter needs ~2 s to import mlflow
    other = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.register_worker",
            url,
            name,
            key,
            str(start_at),
            "8",
            str(outbox.with_name("other.sqlite3")),
            "1" if key_index else "0",
        ],
        cwd=SDK_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    mine: list[Registration] = []

    def one() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        mine.append(reg.register_model(name, "s3://bucket/race", idempotency_key=key))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    out, _ = other.communicate(timeout=120)
    assert other.returncode == 0
    theirs = json.loads(out.strip().splitlines()[-1])
    versions = {r.version for r in mine} | {v for _s, v, _d in theirs}
    assert {r.status for r in mine} | {s for s, _v, _d in theirs} == {"registered"}
    assert keys_of(url, name) == Counter({key: 1}), "exactly one version for the key"
    assert len(versions) == 1, f"every caller gets the same version, got {versions}"


def test_threads_and_a_second_process_with_one_key_make_one_version(
    pg_mlflow: PgMlflow, metrics: SdkMetrics, tmp_path: Path
) -> None:
    assert pg_mlflow.migrate_report["key_index"] == {
        "name": "hokusai_model_version_key_uq",
        "changed": True,
    }
    url = pg_mlflow.server.url
    reg = registry(url, metrics, tmp_path / "o.sqlite3")
    name = f"race-{uuid.uuid4().hex[:8]}"
    MlflowClient(url).create_registered_model(name)
    race(url, reg, name, "pipeline-run-1", tmp_path / "o.sqlite3", key_index=True)


def test_without_the_index_concurrent_writers_converge_to_one_version(
    mlflow_server: MlflowServer, metrics: SdkMetrics, tmp_path: Path
) -> None:
    # the session's SQLite server has no index: the client-side converge path must hold
    url = mlflow_server.url
    reg = registry(url, metrics, tmp_path / "o.sqlite3", key_index=False)
    name = f"race-{uuid.uuid4().hex[:8]}"
    MlflowClient(url).create_registered_model(name)
    race(url, reg, name, "pipeline-run-2", tmp_path / "o.sqlite3", key_index=False)


def test_a_create_committed_after_the_client_gave_up_stays_one_version(
    pg_mlflow: PgMlflow, pg_proxy: FlakyProxy, metrics: SdkMetrics, tmp_path: Path
) -> None:
    policy = RetryPolicy(
        max_attempts=4, initial_backoff=0.05, max_backoff=0.1, deadline=15, attempt_timeout=1
    )
    reg = registry(pg_proxy.url, metrics, tmp_path / "o.sqlite3", retry_policy=policy)
    name = f"stall-{uuid.uuid4().hex[:8]}"
    reg.register_model(name, "s3://bucket/first")  # the registered model exists

    # 1. MLflow commits, then the answer stalls past the client's timeout
    pg_proxy.stall_response_for("model-versions/create", 3.0)
    a = reg.register_model(name, "s3://bucket/a", idempotency_key="stalled-answer")
    assert (a.status, a.deduplicated) == ("registered", True)

    # 2. the create reaches MLflow only after the client timed out and retried
    pg_proxy.delay_request_for("model-versions/create", 2.5)
    b = reg.register_model(name, "s3://bucket/b", idempotency_key="late-commit")
    assert b.status == "registered"
    time.sleep(0.2)
    pg_proxy.wait_idle()  # the delayed create has been answered (refused by the index)
    keys = keys_of(pg_mlflow.server.url, name)
    assert keys["stalled-answer"] == 1 and keys["late-commit"] == 1, keys


def test_flush_racing_live_registrations_makes_one_version_per_key(
    pg_mlflow: PgMlflow, pg_proxy: FlakyProxy, metrics: SdkMetrics, tmp_path: Path
) -> None:
    outbox = tmp_path / "o.sqlite3"
    reg = registry(pg_proxy.url, metrics, outbox, retry_policy=RetryPolicy(max_attempts=1))
    name = f"flushrace-{uuid.uuid4().hex[:8]}"
    MlflowClient(pg_mlflow.server.url).create_registered_model(name)
    keys = [f"step-{i}" for i in range(6)]
    pg_proxy.mode = "refuse"
    for k in keys:
        assert reg.register_model(name, f"s3://bucket/{k}", idempotency_key=k).pending
    pg_proxy.mode = "pass"
    live = registry(pg_proxy.url, metrics, outbox)  # the pipeline re-run, same process
    go = threading.Barrier(1 + len(keys))
    results: list[object] = []

    def flusher() -> None:
        go.wait()
        results.append(reg.flush())

    def rerun(k: str) -> None:
        go.wait()
        results.append(live.register_model(name, f"s3://bucket/{k}", idempotency_key=k))

    threads = [threading.Thread(target=flusher)]
    threads += [threading.Thread(target=rerun, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert keys_of(pg_mlflow.server.url, name) == Counter(dict.fromkeys(keys, 1))
    assert reg.outbox is not None and reg.outbox.depth() == 0


def test_postgres_crash_short_outage_stays_short(
    pg_mlflow: PgMlflow, metrics: SdkMetrics, tmp_path: Path
) -> None:
    """Kill PostgreSQL for ~2 s under a stream of registrations (default breaker settings).

    Measures how long after PostgreSQL is back the synchronous path works again (the breaker
    probes after 1 s, 2 s, 4 s ...) and how long until the background drain has registered the
    rows spooled meanwhile, without any flush() by the caller.
    """
    url = pg_mlflow.server.url
    reg = ModelRegistry(
        url,
        metrics=metrics,
        outbox_path=tmp_path / "o.sqlite3",
        breaker=CircuitBreaker(url),  # the defaults: reset 1 s, x2, max 10 s
        retry_policy=RetryPolicy(
            max_attempts=3, initial_backoff=0.1, max_backoff=0.5, deadline=3, attempt_timeout=2
        ),
        key_index=True,
    )
    name = f"failover-{uuid.uuid4().hex[:8]}"
    receipts: list[tuple[float, Registration]] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            r = reg.register_model(name, f"s3://bucket/f/{i}")
            receipts.append((time.monotonic(), r))
            i += 1
            time.sleep(0.2)

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        time.sleep(1.5)
        pg_mlflow.pg.kill()
        crashed = time.monotonic()
        time.sleep(2.0)
        pg_mlflow.pg.start()
        back = time.monotonic()
        assert reg.outbox is not None
        sync_back = drained = None
        deadline = back + 40
        while time.monotonic() < deadline and (sync_back is None or drained is None):
            ok = [t for t, r in receipts if t > back and r.status == "registered"]
            if sync_back is None and ok:
                sync_back = ok[0] - back
            if drained is None and sync_back is not None and reg.outbox.depth(url) == 0:
                drained = time.monotonic() - back
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join(30)
        reg.close()
    spooled = [r for _t, r in receipts if r.pending]
    print(
        f"\nPostgreSQL down {back - crashed:.1f} s: {len(spooled)} of {len(receipts)} "
        f"registrations spooled; synchronous path back {sync_back or -1:.2f} s after PostgreSQL, "
        f"outbox drained {drained or -1:.2f} s after PostgreSQL (no flush() call)"
    )
    assert spooled, "the outage must have been seen"
    assert sync_back is not None and drained is not None
    # a fixed 30 s reset timeout (the old default) would take ~30 s here
    assert sync_back < 10 and drained < 15
    keys = keys_of(url, name)
    assert {r.idempotency_key for _t, r in receipts} == set(keys)
    assert max(keys.values()) == 1


def test_cli_flush_in_another_process_racing_reruns_makes_one_version_per_key(
    pg_mlflow: PgMlflow, pg_proxy: FlakyProxy, metrics: SdkMetrics, tmp_path: Path
) -> None:
    """The review's case: a cron `hokusai-outbox flush` and a pipeline re-run, same keys."""
    import fcntl
    import os

    outbox = tmp_path / "o.sqlite3"
    reg = registry(pg_proxy.url, metrics, outbox, retry_policy=RetryPolicy(max_attempts=1))
    name = f"cliflush-{uuid.uuid4().hex[:8]}"
    MlflowClient(pg_mlflow.server.url).create_registered_model(name)
    keys = [f"job-{i}" for i in range(6)]
    pg_proxy.mode = "refuse"
    for k in keys:
        assert reg.register_model(name, f"s3://bucket/{k}", idempotency_key=k).pending
    pg_proxy.mode = "pass"
    pg_proxy.delay_all = 0.15  # both sides slow enough to overlap
    env = dict(os.environ, HOKUSAI_KEY_INDEX="1")
    cli = Path(sys.executable).parent / "hokusai-outbox"
    flush = subprocess.Popen(
        [str(cli), "--path", str(outbox), "flush"], env=env, stdout=subprocess.PIPE, text=True
    )
    lock = outbox.with_name(outbox.name + ".lock")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the other process holds the replay lock
        if lock.exists():
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                break
            finally:
                os.close(fd)
        time.sleep(0.01)
    rerun = registry(pg_proxy.url, metrics, tmp_path / "rerun.sqlite3")
    # newest first while the flush goes oldest first: they meet in the middle
    receipts = [
        rerun.register_model(name, f"s3://bucket/{k}", idempotency_key=k) for k in reversed(keys)
    ]
    out, _ = flush.communicate(timeout=120)
    pg_proxy.delay_all = 0
    assert flush.returncode == 0, out
    print(
        f"\nCLI flush: {out.count('already registered')} of {len(keys)} found by key; re-run: "
        f"{sum(r.deduplicated for r in receipts)} of {len(keys)} found by key"
    )
    assert {r.status for r in receipts} == {"registered"}
    assert keys_of(pg_mlflow.server.url, name) == Counter(dict.fromkeys(keys, 1))
