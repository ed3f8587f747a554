"""pgBackRest to MinIO end to end: stanza, WAL archiving, a backup through the
wrapper with its metrics, and a restore drill through playbooks/restore.yml."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from labtools import inventory_host, wait_for

NODES = ("bk-db-1", "bk-db-2", "bk-db-3")
ROOT = Path(__file__).resolve().parents[3]
STANZA = "hokusai"
METRICS = "/var/lib/prometheus/node-exporter/hokusai_backup_database.prom"

PRIMARY_PROBE = "curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:8008/primary"


def leader():
    for name in NODES:
        node = inventory_host(name)
        if node.run(PRIMARY_PROBE).stdout == "200":
            return node
    raise AssertionError("no Patroni leader")


def pgbackrest(node, *args: str):
    return node.run(" ".join(["runuser -u postgres -- pgbackrest", f"--stanza={STANZA}", *args]))


def psql(node, sql: str) -> str:
    return node.check_output(f'runuser -u postgres -- psql -X -At -d postgres -c "{sql}"')


def info(node) -> dict:
    result = pgbackrest(node, "--output=json", "info")
    assert result.rc == 0, result.stderr
    return next(s for s in json.loads(result.stdout) if s["name"] == STANZA)


def test_config_is_private_and_encrypted(host):
    if host.backend.get_hostname() not in NODES:
        pytest.skip("not a database node")
    conf = host.file("/etc/pgbackrest/pgbackrest.conf")
    assert conf.mode == 0o640 and conf.user == "root" and conf.group == "postgres"
    assert "repo1-cipher-type=aes-256-cbc" in conf.content_string


def test_timers_on_every_node(host):
    if host.backend.get_hostname() not in NODES:
        pytest.skip("not a database node")
    for kind in ("full", "diff"):
        assert host.service(f"hokusai-pgbackrest-backup-{kind}.timer").is_enabled


def test_stanza_ok_with_a_first_full_backup():
    stanza = info(leader())
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert any(b["type"] == "full" for b in stanza["backup"])
    assert stanza["cipher"] == "aes-256-cbc"


def test_pgbackrest_check_on_the_leader():
    result = pgbackrest(leader(), "check")
    assert result.rc == 0, result.stderr + result.stdout


def test_archive_timeout_pushes_a_segment_on_an_idle_cluster():
    node = leader()
    before = psql(node, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    # One tiny write, then nothing: the segment holding it must reach the
    # archive through archive_timeout (60 s) without a manual switch.
    psql(node, "CREATE TABLE IF NOT EXISTS rpo_probe(at timestamptz); INSERT INTO rpo_probe VALUES (now())")
    started = time.monotonic()
    wait_for(
        lambda: psql(node, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") > before,
        timeout=150,
        interval=2,
        what="a WAL segment archived by archive_timeout",
    )
    print(f"idle cluster: the write reached the archive after {time.monotonic() - started:.0f} s")


def test_wrapper_backs_up_on_the_leader_only_and_writes_metrics():
    node = leader()
    count = len(info(node)["backup"])
    started = time.monotonic()
    run = node.run("systemctl start hokusai-pgbackrest-backup@incr.service")
    assert run.rc == 0, run.stderr
    print(f"incremental backup through the unit: {time.monotonic() - started:.1f} s")
    assert len(info(node)["backup"]) == count + 1
    metrics = node.file(METRICS).content_string
    assert 'hokusai_backup_last_success_timestamp_seconds{kind="database",type="incr"}' in metrics
    assert 'hokusai_backup_last_size_bytes{kind="database"}' in metrics
    assert 'hokusai_backup_last_run_success{kind="database"} 1' in metrics
    for name in NODES:
        replica = inventory_host(name)
        if replica.backend.get_hostname() == node.backend.get_hostname():
            continue
        out = replica.run("systemctl start hokusai-pgbackrest-backup@incr.service")
        assert out.rc == 0, out.stderr
        assert 'hokusai_backup_last_run_success{kind="database"} 1' in replica.file(METRICS).content_string
    assert len(info(node)["backup"]) == count + 1, "a replica took a backup"


def restore(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "playbooks/restore.yml", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_restore_refuses_without_confirmation():
    result = restore("-e", "restore_confirm=nope")
    assert result.returncode != 0
    assert "DESTROYS" in result.stdout + result.stderr


@pytest.mark.parametrize("target", ["set", "time"])
def test_restore_drill_brings_the_data_back(target):
    node = leader()
    psql(node, "DROP TABLE IF EXISTS drill; CREATE TABLE drill(id int)")
    psql(node, "INSERT INTO drill VALUES (1)")
    assert pgbackrest(node, "--type=incr", "backup").rc == 0
    label = info(node)["backup"][-1]["label"]
    psql(node, "INSERT INTO drill VALUES (2)")
    time.sleep(2)
    point = psql(node, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')") + "+00"
    time.sleep(2)
    psql(node, "INSERT INTO drill VALUES (3)")
    segment = psql(node, "SELECT pg_walfile_name(pg_switch_wal())")
    wait_for(
        lambda: psql(node, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= segment,
        timeout=120,
        interval=2,
        what="the last writes archived",
    )
    args = ["-e", "restore_confirm=hokusai-pg"]
    args += ["-e", f"restore_set={label}"] if target == "set" else ["-e", f'restore_target_time="{point}"']
    started = time.monotonic()
    result = restore(*args)
    assert result.returncode == 0, result.stdout[-4000:]
    print(f"restore to {target}: {time.monotonic() - started:.0f} s")
    expected = "1" if target == "set" else "1,2"
    new_leader = leader()
    assert psql(new_leader, "SELECT string_agg(id::text, ',' ORDER BY id) FROM drill") == expected
    state = json.loads(new_leader.check_output("curl -sf http://127.0.0.1:8008/cluster"))
    assert len(state["members"]) == 3
    assert [m["role"] for m in state["members"]].count("leader") == 1
    assert all(m["state"] == "streaming" for m in state["members"] if m["role"] != "leader")
