"""WAL archiving and the artifact mirror go on while a MinIO node is lost.

pgBackRest on the database hosts and the artifact mirror on mon1 used to talk
to one MinIO node, minio1: with it gone, every archive-push failed and WAL
piled up on the primary. They now talk to the local S3 endpoint
(roles/s3_endpoint: HAProxy on 127.0.0.1 over every MinIO node, active checks).

Two ways minio1 is lost, one after the other: its container stopped, then its
network cut (`docker network disconnect`: a host loss, nothing answers at its
address). During each, the test writes on the Patroni leader and forces WAL
switches; every one of them must be archived (pg_stat_archiver: archived_count
grows by the switches, failed_count does not move, last_archived_wal reaches
the last switched segment) and `pgbackrest check` must pass. During the host
loss the artifact mirror runs once and must succeed. minio1 is always brought
back (finally), and must be healthy again with the endpoint using it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

DB_HOSTS = ("db1", "db2", "db3")
NETWORK = "hokusai-lab"
LOST, LOST_IP = "minio1", "172.28.10.21"
SWITCHES = 3
# The endpoint's name for minio1 in its statistics (s3_endpoint_backends = addresses).
LOST_SERVER = f"{LOST_IP}_9000"
TABLE = "hokusai_e2e_minio_node_loss"


def sh(host: str, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["docker", "exec", f"hokusai-lab-{host}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        said = f"{proc.stdout[-1500:]} {proc.stderr[-1500:]}"
        raise AssertionError(f"{host}: {' '.join(argv)} -> rc {proc.returncode}: {said}")
    return proc


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=True)


def psql(host: str, sql: str) -> str:
    argv = ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return sh(host, *argv).stdout.strip()


def leader() -> str:
    for host in DB_HOSTS:
        argv = ["/opt/patroni/bin/patronictl", "-c", "/etc/patroni/patroni.yml", "list", "-f", "json"]
        proc = sh(host, *argv, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            for member in json.loads(proc.stdout):
                if member.get("Role") == "Leader" and member.get("State") == "running":
                    return str(member["Member"])
    raise AssertionError("no running Patroni leader")


def wait_for(what: str, condition: Callable[[], object], timeout: float, every: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (AssertionError, subprocess.SubprocessError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")


def archiver(host: str) -> dict[str, object]:
    sql = "SELECT archived_count, failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver"
    row = psql(host, sql)
    archived, failed, last = row.split("|")
    return {"archived": int(archived), "failed": int(failed), "last": last}


def endpoint_state(host: str, server: str) -> str:
    csv = sh(host, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:7010/;csv").stdout
    for line in csv.splitlines():
        fields = line.split(",")
        if fields[:2] == ["s3", server]:
            return fields[17]
    return ""


def minio_healthy() -> bool:
    """minio1 answers liveness and the cluster (asked through minio1) has write quorum."""
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]
    ca = ["--cacert", "/etc/minio/certs/CAs/ca.crt"]
    codes = [
        sh(LOST, *curl, *ca, f"https://{LOST}:9000/minio/health/{path}", check=False).stdout
        for path in ("live", "cluster")
    ]
    return codes == ["200", "200"]


@contextmanager
def node_lost(how: str) -> Iterator[None]:
    container = f"hokusai-lab-{LOST}"
    if how == "stopped":
        docker("stop", "--time", "5", container)
    else:
        docker("network", "disconnect", NETWORK, container)
    try:
        yield
    finally:
        if how == "stopped":
            docker("start", container)
        else:
            docker("network", "connect", "--ip", LOST_IP, "--alias", LOST, NETWORK, container)


@pytest.fixture
def scratch_table() -> Iterator[str]:
    host = leader()
    psql(host, f"CREATE TABLE IF NOT EXISTS {TABLE} (at timestamptz, note text)")
    yield host
    psql(leader(), f"DROP TABLE IF EXISTS {TABLE}")


@pytest.mark.parametrize("how", ["stopped", "partitioned"])
def test_wal_archiving_goes_on_without_minio1(how: str, scratch_table: str) -> None:
    primary = scratch_table
    assert minio_healthy(), "MinIO must be healthy before the test"
    before = archiver(primary)
    t0 = time.monotonic()
    with node_lost(how):
        # Archiving must not wait for the endpoint to take minio1 out.
        switched = []
        for i in range(SWITCHES):
            insert = f"INSERT INTO {TABLE} SELECT now(), 'switch {i}' FROM generate_series(1, 100)"  # noqa: S608 - constants only
            psql(primary, insert)
            switched.append(psql(primary, "SELECT pg_walfile_name(pg_switch_wal())"))
        now = wait_for(
            f"{SWITCHES} segments archived up to {switched[-1]}",
            lambda: (
                (a := archiver(primary))["archived"] >= before["archived"] + SWITCHES
                and a["last"] >= switched[-1]
                and a
            ),
            timeout=40,
        )
        archived_s = time.monotonic() - t0
        # The endpoint on the primary takes minio1 out (~2.5 s after the loss).
        state = wait_for(
            f"the endpoint on {primary} marking minio1 down",
            lambda: (st := endpoint_state(primary, LOST_SERVER)).startswith("DOWN") and st,
            timeout=15,
        )
        down_s = time.monotonic() - t0
        check = sh(primary, "runuser", "-u", "postgres", "--", "pgbackrest", "--stanza=hokusai", "check",
                   timeout=90, check=False)  # fmt: skip
        mirror = None
        if how == "partitioned":
            unit = "hokusai-artifact-backup.service"
            sh("mon1", "systemctl", "reset-failed", unit, check=False)
            mirror = sh("mon1", "systemctl", "start", unit, timeout=120, check=False)
        after = archiver(primary)
    print(
        f"\nminio1 {how}: {SWITCHES} switched segments archived {archived_s:.1f} s after the loss "
        f"(archived {before['archived']} -> {now['archived']}, "
        f"failed {before['failed']} -> {after['failed']}, last {after['last']}); "
        f"the endpoint on {primary} had minio1 {state} {down_s:.1f} s after the loss"
    )
    assert after["failed"] == before["failed"], f"archive-push failed, minio1 {how}: {before} -> {after}"
    assert check.returncode == 0, f"pgbackrest check failed: {check.stdout[-2000:]} {check.stderr[-2000:]}"
    if mirror is not None:
        assert mirror.returncode == 0, f"the artifact mirror failed: {mirror.stderr[-2000:]}"

    # minio1 is back and used again.
    wait_for("minio1 healthy again", minio_healthy, timeout=60, every=1)
    wait_for(
        f"the endpoint on {primary} using minio1 again",
        lambda: endpoint_state(primary, LOST_SERVER) == "UP",
        timeout=30,
    )
