"""A second process for the race tests: N threads register one key at an agreed instant.

    python -m tests.integration.register_worker URL NAME KEY START_AT THREADS OUTBOX KEY_INDEX

Prints one JSON line: the receipts' (status, version, deduplicated).
"""

from __future__ import annotations

import json
import sys
import threading
import time

from prometheus_client import CollectorRegistry

from hokusai.breaker import CircuitBreaker
from hokusai.core import ModelRegistry, Registration
from hokusai.metrics import SdkMetrics


def main(argv: list[str]) -> int:
    url, name, key, start_at, threads, outbox, key_index = argv
    registry = ModelRegistry(
        url,
        metrics=SdkMetrics(CollectorRegistry()),
        breaker=CircuitBreaker(url, failure_threshold=50),
        outbox_path=outbox,
        key_index=key_index == "1",
        auto_drain=False,
    )
    results: list[Registration] = []
    lock = threading.Lock()

    def one() -> None:
        time.sleep(max(0.0, float(start_at) - time.time()))
        r = registry.register_model(name, "s3://bucket/race", idempotency_key=key)
        with lock:
            results.append(r)

    workers = [threading.Thread(target=one) for _ in range(int(threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps([[r.status, r.version, r.deduplicated] for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
