"""Artifact I/O through the entry point while MinIO nodes are lost (issue 21).

A checksummed stream of uploads and downloads through the floating address,
nginx, the instance pool and MLflow's artifact proxy (artifact_stream.py: no
client retries, each operation timed on its own), while MinIO hosts lose their
network (`docker network disconnect`: a host loss, nothing answers at the
address and no connection is reset; a killed container resets them and costs
nothing, roles/minio/README.md "Losing a node").

- One node lost (6 of 8 drives left, write quorum 5): every operation
  succeeds, none takes longer than ONE_NODE_SLOWEST_S, and once the node is
  back it is ready and every host's S3 endpoint uses it again, without a
  manual step.
- Two nodes lost (4 of 8: write quorum gone): every download of an object
  acknowledged before goes on succeeding; uploads are refused, and once the
  refusal has set in (REFUSAL_SETTLES_S after the loss) each is refused
  within REFUSAL_S with an answer that says why; no upload answered 200 is
  lost. Once both nodes are back, uploads succeed again without a manual step.

After each case every acknowledged object is downloaded and compared.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from artifact_stream import ArtifactStream, Op, summary
from conftest import Lab

NETWORK = "hokusai-lab"
IPS = {"minio3": "172.28.10.23", "minio4": "172.28.10.24"}
# Hosts with an S3 endpoint (roles/s3_endpoint) that must use a node again once it is back.
ENDPOINT_HOSTS = ("mlflow1", "mlflow2", "db1", "db2", "db3", "mon1")
BEFORE_S = 5.0
# Issue 21's goal is 3 s for the first operation after a node loss. Measured
# through the stack with the patched build (grid ping 2 s): 4.2-6.6 s; with
# upstream's 10 s ping MinIO held every call waiting on the lost peer 16-30 s
# (roles/minio/README.md "Through the load balancer"). The bound is the line
# that hold crosses.
ONE_NODE_DURING_S, ONE_NODE_SLOWEST_S = 25.0, 15.0
# Without write quorum MinIO refuses writes once it has dropped the lost peers
# (4-6 s) and the readiness probes have seen a refusal (~10 s measured, 23-30 s
# with the 10 s ping); from then on the load balancer refuses each upload
# within REFUSAL_S with an answer that says why.
TWO_NODES_DURING_S, REFUSAL_SETTLES_S, REFUSAL_S = 35.0, 20.0, 2.0
WHY = "write quorum"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def on(host: str, *argv: str) -> str:
    return docker("exec", f"hokusai-lab-{host}", *argv, check=False).stdout


def wait_for(what: str, condition: Callable[[], object], timeout: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")


def node_ready(node: str) -> bool:
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]
    url = "https://127.0.0.1:9000/minio/health/ready"
    return on(node, *curl, "--cacert", "/etc/minio/certs/CAs/ca.crt", url) == "200"


def drives_online_as_seen_by(node: str) -> int:
    """Drives `node` reports online (mc admin info asked of that node, with its root alias)."""
    script = (
        "set -a; . /etc/default/minio; set +a; "
        f'MC_HOST_n="https://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@{node}:9000" '
        "mc --config-dir /etc/minio/mc admin info n --json"
    )
    try:
        info = json.loads(on(node, "sh", "-c", script))
    except ValueError:
        return 0
    servers = info.get("info", {}).get("servers", [])
    return sum(
        1
        for server in servers
        if server.get("state") == "online"
        for drive in server.get("drives", [])
        if drive.get("state") == "ok"
    )


def endpoint_uses(host: str, ip: str) -> bool:
    csv = on(host, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:7010/;csv")
    states = [line.split(",")[17] for line in csv.splitlines() if line.startswith(f"s3,{ip}_")]
    return states == ["UP"]


@contextmanager
def partitioned(*nodes: str) -> Iterator[None]:
    cut: list[str] = []
    try:
        for node in nodes:
            docker("network", "disconnect", NETWORK, f"hokusai-lab-{node}")
            cut.append(node)
        yield
    finally:
        # Each node its own step: one that fails to reconnect must not leave the others cut off.
        failed = [
            node
            for node in cut
            if docker(
                "network",
                "connect",
                "--ip",
                IPS[node],
                "--alias",
                node,
                NETWORK,
                f"hokusai-lab-{node}",
                check=False,
            ).returncode
            != 0
        ]
        assert not failed, f"could not reconnect {failed} to {NETWORK}"


@pytest.fixture
def stream(lab: Lab) -> Iterator[ArtifactStream]:
    # Every node sees all 8 drives online: right after another test brought a
    # node back, objects written before the peers saw it again live on 6
    # drives only, and losing two more nodes then makes them unreadable
    # (seen in CI: HeadObject 404 after test_minio_node_loss).
    for node in ("minio1", "minio2", *IPS):
        wait_for(f"{node} sees all 8 drives online", lambda n=node: drives_online_as_seen_by(n) == 8, 120)
    s = ArtifactStream(
        url=lab.url,
        ca=str(lab.ca),
        username=lab.username,
        password=lab.password,
        prefix=f"e2e/node-loss-{uuid.uuid4().hex[:8]}",
        workers=3,
        size=1 << 20,
        timeout=90,
    )
    yield s
    s.stop()
    s.delete_all()


def run(stream: ArtifactStream, during: float, *nodes: str) -> tuple[list[Op], float]:
    """The stream before, during and after the loss of `nodes`; (ops, moment of the loss)."""
    stream.start()
    time.sleep(BEFORE_S)
    lost_at = time.time()
    with partitioned(*nodes):
        time.sleep(during)
    healed_at = time.time()
    for node in nodes:
        wait_for(f"{node} ready again", lambda n=node: node_ready(n), timeout=120)
    wait_for(
        "an upload acknowledged after the heal",
        lambda: any(op.kind == "PUT" and not op.error and op.start > healed_at for op in stream.snapshot()),
        timeout=60,
    )
    stream.stop()
    ops = stream.snapshot()
    print("\n" + "\n".join(summary(f"{'+'.join(nodes)} lost: all", ops, lost_at)))
    return ops, lost_at


def assert_nothing_lost(stream: ArtifactStream) -> None:
    problems = stream.verify()
    assert not problems, f"acknowledged uploads lost or corrupted: {problems[:10]}"


def test_one_node_lost_every_operation_succeeds_fast(stream: ArtifactStream) -> None:
    ops, lost_at = run(stream, ONE_NODE_DURING_S, "minio4")
    after = [op for op in ops if op.end > lost_at]
    assert after, "no operation ran after the loss"
    failed = [op for op in ops if op.error]
    assert not failed, f"{len(failed)} operations failed with one node lost, first: {failed[0]}"
    worst = max(after, key=lambda op: op.seconds)
    assert worst.seconds <= ONE_NODE_SLOWEST_S, (
        f"slowest operation after the loss took {worst.seconds:.1f} s (bound {ONE_NODE_SLOWEST_S} s): {worst}"
    )
    assert_nothing_lost(stream)
    for host in ENDPOINT_HOSTS:
        wait_for(
            f"the S3 endpoint on {host} using minio4 again",
            lambda h=host: endpoint_uses(h, IPS["minio4"]),
            30,
        )


def test_two_nodes_lost_reads_go_on_writes_refused_fast(stream: ArtifactStream) -> None:
    ops, lost_at = run(stream, TWO_NODES_DURING_S, "minio3", "minio4")
    # By start time (a hung operation must count), and not the last seconds
    # before the heal (an upload started then may rightly be accepted).
    during = [op for op in ops if lost_at <= op.start <= lost_at + TWO_NODES_DURING_S - 3]
    gets = [op for op in during if op.kind == "GET"]
    puts = [op for op in during if op.kind == "PUT"]
    assert gets, "no download ran while write quorum was lost"
    failed_gets = [op for op in gets if op.error]
    assert not failed_gets, (
        f"{len(failed_gets)} downloads failed without write quorum, first: {failed_gets[0]}"
    )
    settled = [op for op in puts if op.start >= lost_at + REFUSAL_SETTLES_S]
    assert len(settled) >= 5, f"{len(settled)} uploads started once the refusal had set in (want 5 or more)"
    accepted = [op for op in settled if not op.error]
    assert not accepted, f"uploads acknowledged without write quorum: {accepted[:3]}"
    slow = [op for op in settled if op.seconds > REFUSAL_S]
    assert not slow, (
        f"{len(slow)} of {len(settled)} uploads refused after more than {REFUSAL_S} s: {slow[:3]}"
    )
    vague = [op for op in settled if op.status != 503 or WHY not in op.error]
    assert not vague, f"refusals that do not say why (503, '{WHY}'): {vague[:3]}"
    assert_nothing_lost(stream)
