#!/usr/bin/env python3
"""Artifact uploads and downloads through the load balancer while MinIO nodes are lost.

Against the running lab (`make lab`): a checksummed stream of uploads and
downloads through MLflow's artifact proxy (tests/e2e/artifact_stream.py: no
client retries, every operation's own duration). After LOSE_AFTER seconds the
nodes in --nodes are lost with `docker network disconnect` (a host loss:
nothing answers at their addresses, no reset); they are connected again when
the stream ends, whatever happens. Prints, per kind, the longest single
operation before the loss, in flight at it and started after it, and the
failures (with two nodes lost, the refused uploads and how fast they were
refused). Issue 21's figures; figures, not assertions (the assertions are in
tests/e2e/test_artifact_node_loss.py). The objects are deleted at the end.

    python3 tests/bench/artifact_node_loss.py                          # minio4, 40 s
    python3 tests/bench/artifact_node_loss.py --nodes minio3,minio4    # write quorum lost

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from artifact_stream import ArtifactStream, summary  # noqa: E402 - after the path

LAB_IPS = {
    "minio1": "172.28.10.21",
    "minio2": "172.28.10.22",
    "minio3": "172.28.10.23",
    "minio4": "172.28.10.24",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("HOKUSAI_LAB_MLFLOW_URL", "https://172.28.10.40"))
    parser.add_argument("--ca", default=str(ROOT / ".secrets/lab-ca/ca.crt"))
    parser.add_argument("--password-file", default=str(ROOT / ".secrets/mlflow_admin_password"))
    parser.add_argument("--nodes", default="minio4", help="comma-separated lab MinIO hosts to lose")
    parser.add_argument("--network", default="hokusai-lab")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--lose-after", type=float, default=8)
    parser.add_argument("--timeout", type=float, default=120, help="client timeout of one operation")
    parser.add_argument("--out", default="", help="write every operation as JSON here")
    args = parser.parse_args()
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    unknown = [n for n in nodes if n not in LAB_IPS]
    if unknown:
        parser.error(f"--nodes: not lab MinIO hosts: {unknown} (known: {sorted(LAB_IPS)})")

    stream = ArtifactStream(
        url=args.url,
        ca=args.ca,
        username="admin",
        password=Path(args.password_file).read_text().strip(),
        prefix=f"bench/node-loss-{uuid.uuid4().hex[:8]}",
        workers=args.workers,
        size=args.size_kib * 1024,
        timeout=args.timeout,
    )
    stream.start()
    time.sleep(args.lose_after)
    lost_at = time.time()
    try:
        for node in nodes:
            subprocess.run(
                ["docker", "network", "disconnect", args.network, f"hokusai-lab-{node}"],
                check=True,
                timeout=60,
            )
        time.sleep(max(0.0, args.seconds - args.lose_after))
        stream.stop()
    finally:
        for node in nodes:
            subprocess.run(
                [
                    "docker",
                    "network",
                    "connect",
                    "--ip",
                    LAB_IPS[node],
                    "--alias",
                    node,
                    args.network,
                    f"hokusai-lab-{node}",
                ],
                check=False,
                timeout=60,
            )
    ops = stream.snapshot()
    print(f"{args.workers} workers, {args.size_kib} KiB objects, {','.join(nodes)} disconnected at +0.0 s")
    for line in (
        summary("before the loss", [op for op in ops if op.end <= lost_at], lost_at)
        + summary("in flight at the loss", [op for op in ops if op.start < lost_at < op.end], lost_at)
        + summary("started after the loss", [op for op in ops if op.start >= lost_at], lost_at)
    ):
        print(line)
    stream.delete_all()
    if args.out:
        Path(args.out).write_text(json.dumps({"lost_at": lost_at, "ops": [asdict(op) for op in ops]}))


if __name__ == "__main__":
    main()
