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
- Healing: every object acknowledged while a node was out (written to 6 of 8
  drives) is on all 8 drives within HEALED_S of the node's return, with no
  manual step (the role's heal watcher, roles/minio/README.md "After a node
  comes back: healing"). Without it such objects keep 6 shards and the two-node
  case above answers 404 for them (seen in CI before the watcher existed).

After each case every acknowledged object is downloaded and compared.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
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
# The heal watcher heals minio_heal_settle (30 s) after every drive is back;
# the heal itself reads every object of the lab (27 s for 1 424 objects).
HEALED_S = 150.0
# How long a probe written through each node must keep landing on all 8
# drives before a test starts (objects written up to ~10 s after a node is
# back can still miss its drives: README of role minio, "After a node comes back").
SETTLED_S = 12.0
# How long an acknowledged object that answered NoSuchKey right after nodes
# returned is read again before it counts as lost (assert_nothing_lost).
UNREADABLE_S = 60.0
# The streams' objects, one folder per run under this one.
STREAM_ROOT = "e2e/node-loss"
# Where the lab's MinIO keeps its drives and MLflow its artifacts
# (inventories/lab/group_vars/minio.yml, the mlflow role's artifact destination).
DRIVES = ("/srv/minio/drive1", "/srv/minio/drive2")
NODES = ("minio1", "minio2", "minio3", "minio4")
BUCKET_PATH = "mlflow-artifacts/artifacts"


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


def drives_holding(prefix: str) -> dict[str, int]:
    """Object key (under the MLflow artifact root) -> on how many drives its xl.meta is."""
    counts: dict[str, int] = {}
    for node in NODES:
        paths = [f"{drive}/{BUCKET_PATH}/{prefix}" for drive in DRIVES]
        out = on(node, "find", *paths, "-name", "xl.meta")
        for line in out.splitlines():
            for drive in DRIVES:
                if line.startswith(f"{drive}/{BUCKET_PATH}/"):
                    key = line[len(f"{drive}/{BUCKET_PATH}/") : -len("/xl.meta")]
                    counts[key] = counts.get(key, 0) + 1
    return counts


def mc_on(node: str, command: str) -> subprocess.CompletedProcess[str]:
    """An mc command on `node` against itself, root credentials from the node's env file."""
    script = (
        "set -a; . /etc/default/minio; set +a; "
        f'MC_HOST_n="https://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@{node}:9000" '
        f"mc --config-dir /etc/minio/mc {command}"
    )
    return docker("exec", f"hokusai-lab-{node}", "sh", "-c", script, check=False)


def every_node_writes_to_all_drives(prefix: str) -> bool:
    """A small object written through each node lands on all 8 drives.

    Right after a node is back, the others go on writing to the drives they
    had for 6-10 s (measured), although `mc admin info` already shows all 8
    online: objects written then live on 6 drives, and two more nodes lost
    make them unreadable.
    """
    for node in NODES:
        key = f"{prefix}/probe-{node}"
        if mc_on(node, f"pipe --quiet n/mlflow-artifacts/artifacts/{key} < /etc/hostname").returncode != 0:
            return False
    counts = drives_holding(prefix)
    mc_on("minio1", f"rm --quiet --recursive --versions --force n/mlflow-artifacts/artifacts/{prefix}/")
    return all(counts.get(f"{prefix}/probe-{node}") == len(NODES) * len(DRIVES) for node in NODES)


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
    # Every node writes to all 8 drives: right after another test brought a
    # node back, objects written then live on 6 drives only, and losing two
    # more nodes makes them unreadable (seen in CI: HeadObject 404 after
    # test_minio_node_loss). One round of probes is not enough: right after
    # minio1 came back, the probes landed on 8 drives at once, yet 13 of 55
    # objects the stream wrote in the next 5 s were on 6 or 7 (lab,
    # 2026-12-02; in a CI-order run 235 downloads then answered 404). So the
    # probes must keep landing on 8 for SETTLED_S.
    probe = f"e2e/probe-{uuid.uuid4().hex[:8]}"
    since: list[float] = []

    def settled() -> bool:
        if not every_node_writes_to_all_drives(probe):
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= SETTLED_S

    wait_for(f"every MinIO node writing to all 8 drives for {SETTLED_S:.0f} s", settled, 150, every=2)
    # What earlier runs left, removed now that the cluster is settled (~1 s):
    # removing a run's objects right after its nodes returned took 1-60 s
    # (through MLflow or with mc, listing or by name), 49 s of make test once.
    # The objects of the last run stay until the next one (or the lab's end).
    removed = mc_on("minio1", f"rm --quiet --recursive --versions --force n/{BUCKET_PATH}/{STREAM_ROOT}/")
    assert removed.returncode == 0, f"could not remove earlier runs' objects: {removed.stderr[-500:]}"
    s = ArtifactStream(
        url=lab.url,
        ca=str(lab.ca),
        username=lab.username,
        password=lab.password,
        prefix=f"{STREAM_ROOT}/{uuid.uuid4().hex[:8]}",
        workers=3,
        size=1 << 20,
        # An upload in flight when two nodes vanish can wait in MinIO for its
        # write lock until they return (README of role minio, "Uploads held
        # by the write lock"): not asserted on (it starts before the refusal
        # sets in), but the stream's stop waits for it; 45 s bounds that.
        timeout=45,
    )
    yield s
    s.stop()


def run(stream: ArtifactStream, during: float, *nodes: str) -> tuple[list[Op], float, float, dict[str, int]]:
    """The stream before, during and after the loss of `nodes`.

    (ops, moment of the loss, moment of the return, on how many drives each
    object of the stream was right after the return)."""
    stream.start()
    time.sleep(BEFORE_S)
    acknowledged = {op.key for op in stream.snapshot() if op.kind == "PUT" and not op.error}  # not in flight
    counts = drives_holding(stream.prefix)
    held = Counter(counts.get(key, 0) for key in acknowledged)
    print("acknowledged objects by drives holding them, at the loss:", dict(sorted(held.items())))
    lost_at = time.time()
    with partitioned(*nodes):
        time.sleep(during)
    healed_at = time.time()
    at_return = drives_holding(stream.prefix)
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
    return ops, lost_at, healed_at, at_return


def assert_nothing_lost(stream: ArtifactStream) -> None:
    """Every acknowledged object reads back whole.

    For a few seconds after nodes return, objects written long before as
    well as ones acknowledged a second earlier can answer NoSuchKey or
    SlowDownRead and then read back whole (3 of ~20 two-node runs on the lab,
    2026-12-02; README of role minio, "After a node comes back"). Those are
    read again for up to UNREADABLE_S and reported;
    only what still fails then counts as lost, and a checksum mismatch at
    once."""
    problems = stream.verify()
    corrupt = {k: v for k, v in problems.items() if v == "checksum mismatch"}
    assert not corrupt, f"acknowledged uploads corrupted: {sorted(corrupt.items())[:10]}"
    if problems:
        print(f"{len(problems)} acknowledged objects unreadable at first:", sorted(problems.items())[:5])
        left: dict[str, str] = dict(problems)

        def readable() -> bool:
            left.clear()
            left.update(stream.verify(sorted(problems)))
            return not left

        try:
            wait_for("the objects unreadable at first to read back", readable, UNREADABLE_S, every=3)
        except AssertionError:
            lost = sorted(left.items())[:10]
            raise AssertionError(f"acknowledged uploads lost or corrupted: {lost}") from None
        print(f"all {len(problems)} read back whole within {UNREADABLE_S:.0f} s")


def test_one_node_lost_every_operation_succeeds_fast(stream: ArtifactStream) -> None:
    ops, lost_at, back_at, at_return = run(stream, ONE_NODE_DURING_S, "minio4")
    after = [op for op in ops if op.end > lost_at]
    assert after, "no operation ran after the loss"
    failed = [op for op in ops if op.error]
    assert not failed, f"{len(failed)} operations failed with one node lost, first: {failed[0]}"
    worst = max(after, key=lambda op: op.seconds)
    assert worst.seconds <= ONE_NODE_SLOWEST_S, (
        f"slowest operation after the loss took {worst.seconds:.1f} s (bound {ONE_NODE_SLOWEST_S} s): {worst}"
    )
    for host in ENDPOINT_HOSTS:
        wait_for(
            f"the S3 endpoint on {host} using minio4 again",
            lambda h=host: endpoint_uses(h, IPS["minio4"]),
            30,
        )
    # Healing: what was acknowledged while minio4 was out lives on 6 drives
    # until healed; the watcher heals it without a manual step. Checked
    # before the objects are read back: MinIO heals an object it reads once
    # every drive answers, which would hide a missing watcher.
    all_drives = len(NODES) * len(DRIVES)
    during_loss = sorted(
        op.key for op in ops if op.kind == "PUT" and not op.error and lost_at < op.start < back_at
    )
    assert during_loss, "no upload was acknowledged while minio4 was out"
    short = [k for k in during_loss if at_return.get(k, 0) < all_drives]
    assert short, (
        "every object written during the outage was on all drives at once:"
        " the test no longer sees what it checks"
    )
    progress: list[str] = []  # seconds after the return: objects still short, for the figures

    def all_healed() -> bool:
        counts = drives_holding(stream.prefix)
        missing = [k for k in during_loss if counts.get(k) != all_drives]
        progress.append(f"+{time.time() - back_at:.0f} s: {len(missing)} ({', '.join(missing[:2])})")
        return not missing

    try:
        wait_for(
            f"the {len(during_loss)} objects written while minio4 was out on all {all_drives} drives",
            all_healed,
            HEALED_S,
            every=5,
        )
    finally:
        print("objects not yet on all drives, after the return:", "; ".join(progress))
    print(
        f"healed: {len(during_loss)} objects written during the outage"
        f" ({len(short)} on fewer drives at the return)"
        f" on all drives {time.time() - back_at:.0f} s after minio4 was back"
    )
    assert_nothing_lost(stream)


def test_two_nodes_lost_reads_go_on_writes_refused_fast(stream: ArtifactStream) -> None:
    ops, lost_at, _, _ = run(stream, TWO_NODES_DURING_S, "minio3", "minio4")
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
