#!/usr/bin/env python3
"""Registrations under a failover: a helper for the lab's end-to-end test (not a test itself).

K clients (threads, one outbox each, default breaker and retry settings, background drain on)
register at ``--rate`` per second each against ``--tracking-uri`` for ``--seconds``; every
``--rerun-every``-th registration re-uses the previous key (a pipeline re-run). Meanwhile the
caller fails the database over. Then the helper waits up to ``--drain-timeout`` for every outbox
to be empty -- no flush() call -- and checks the registry: exactly one version per key, none
lost. Prints one JSON object and exits 0 only when that holds:

    {"registrations": 600, "spooled": 41, "keys": 560, "duplicated": {}, "lost": [],
     "pending_seconds": 2.4, "first_pending": ..., "last_pending": ..., "drained_after": 3.1,
     "still_pending": 0, "max_call_seconds": 0.4, "longest_gap_seconds": 0.9, "ok": true}

``pending_seconds`` is the span during which registrations came back "pending";
``max_call_seconds`` the longest single register_model call; ``longest_gap_seconds`` the
longest stretch with no synchronous (not pending) success from any client;
``drained_after`` is the time from the last pending receipt until all outboxes were empty.

Run it in the SDK's venv (``sdk/scripts/venv.sh`` prints it), in the background while the
failover is triggered, e.g.::

    "$venv/bin/python" sdk/scripts/registration_stream.py --tracking-uri https://lb:443 \\
        --clients 4 --rate 5 --seconds 60 --key-index --model e2e-failover > result.json &
    ... trigger the failover ...
    wait $!

Credentials come from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (and ``REQUESTS_CA_BUNDLE`` or
``MLFLOW_TRACKING_INSECURE_TLS`` for the lab's certificate), as for any MLflow client.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from mlflow import MlflowClient
from prometheus_client import CollectorRegistry

from hokusai.breaker import CircuitBreaker
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry, Registration
from hokusai.metrics import SdkMetrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model", default=f"e2e-stream-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=5.0, help="registrations/s per client")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rerun-every", type=int, default=10)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--key-index", action="store_true", help="the server has the index")
    parser.add_argument("--outbox-dir", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    outbox_dir = Path(args.outbox_dir or tempfile.mkdtemp(prefix="hokusai-stream-"))
    breaker = CircuitBreaker(args.tracking_uri)  # one per process, as breaker_for would share
    registries = [
        ModelRegistry(
            args.tracking_uri,
            metrics=SdkMetrics(CollectorRegistry()),
            breaker=breaker,
            outbox_path=outbox_dir / f"client-{i}.sqlite3",
            key_index=args.key_index,
        )
        for i in range(args.clients)
    ]
    receipts: list[tuple[float, Registration]] = []
    # (start, end, pending) of every call: the longest call and the longest
    # stretch without a synchronous success are what a user feels.
    calls: list[tuple[float, float, bool]] = []
    lock = threading.Lock()
    end = time.monotonic() + args.seconds

    errors: list[str] = []

    def client(i: int) -> None:
        try:
            register_loop(i)
        except Exception as exc:  # a client that dies is a failure of the run
            with lock:
                errors.append(f"client {i}: {type(exc).__name__}: {exc}")

    def register_loop(i: int) -> None:
        n = 0
        previous: str | None = None
        while time.monotonic() < end:
            rerun = previous is not None and args.rerun_every and n % args.rerun_every == 0
            key = previous if rerun else f"c{i}-{n}-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            r = registries[i].register_model(
                args.model, f"s3://e2e/{key}", idempotency_key=key, tags={"client": str(i)}
            )
            ended = time.monotonic()
            with lock:
                receipts.append((ended, r))
                calls.append((started, ended, r.pending))
            previous = key
            n += 1
            time.sleep(1.0 / args.rate)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pending_at = [t for t, r in receipts if r.pending]
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        if all(reg.outbox is not None and reg.outbox.depth() == 0 for reg in registries):
            break
        time.sleep(0.2)
    drained_at = time.monotonic()
    still = sum(reg.outbox.depth() for reg in registries if reg.outbox is not None)
    for reg in registries:
        reg.close()

    client_ = MlflowClient(args.tracking_uri)
    versions = client_.search_model_versions(f"name = '{args.model}'")
    by_key = Counter(mv.tags.get(IDEMPOTENCY_TAG) for mv in versions)
    keys = {r.idempotency_key for _t, r in receipts}
    result = {
        "model": args.model,
        "registrations": len(receipts),
        "spooled": len(pending_at),
        "keys": len(keys),
        "versions": len(versions),
        "duplicated": {k: n for k, n in by_key.items() if n > 1},
        "lost": sorted(keys - set(by_key)),
        "pending_seconds": round(pending_at[-1] - pending_at[0], 2) if pending_at else 0.0,
        "drained_after": round(drained_at - pending_at[-1], 2) if pending_at else 0.0,
        "still_pending": still,
    }
    successes = sorted(e for _s, e, pending in calls if not pending)
    gaps = [b - a for a, b in itertools.pairwise(successes)]
    slowest = max(calls, key=lambda c: c[1] - c[0], default=None)
    result["max_call_seconds"] = round(slowest[1] - slowest[0], 2) if slowest else 0.0
    result["longest_gap_seconds"] = round(max(gaps, default=0.0), 2)
    result["errors"] = errors
    result["ok"] = not result["duplicated"] and not result["lost"] and still == 0 and not errors
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
