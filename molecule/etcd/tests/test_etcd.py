"""Verify the 3-member etcd cluster, including the loss of one member."""

from __future__ import annotations

import json
import uuid

import pytest
from labtools import container_stopped, inventory_host, wait_for

MEMBERS = ("etcd-1", "etcd-2", "etcd-3")
ETCDCTL = "set -a; . /etc/etcd/etcdctl.env; set +a; etcdctl"


def etcdctl(host, args: str, endpoints: str | None = None) -> str:
    # etcdctl refuses a flag that shadows an environment variable: override the variable.
    override = f"ETCDCTL_ENDPOINTS={endpoints} " if endpoints else ""
    return host.check_output(f"set -a; . /etc/etcd/etcdctl.env; set +a; {override}etcdctl {args}")


def client_url(host) -> str:
    env = host.file("/etc/etcd/etcdctl.env").content_string
    return next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("ETCDCTL_ENDPOINTS="))


@pytest.fixture(scope="module")
def members():
    return {name: inventory_host(name) for name in MEMBERS}


def test_service_active_and_enabled(host):
    service = host.service("etcd")
    assert service.is_running
    assert service.is_enabled


def test_config_not_world_readable(host):
    conf = host.file("/etc/etcd/etcd.conf.yml")
    assert conf.user == "root"
    assert conf.group == "etcd"
    assert conf.mode == 0o640
    assert host.file("/etc/etcd/tls/server.key").mode == 0o640


def test_client_port_requires_tls(host):
    # Plain HTTP on the client port must not be served when TLS is on.
    result = host.run("curl -sS --max-time 3 http://127.0.0.1:2379/health")
    assert result.rc != 0 or '"health":"true"' not in result.stdout


def test_health_endpoint(host):
    out = host.check_output("curl -sS --max-time 3 http://127.0.0.1:2381/health")
    assert json.loads(out)["health"] == "true"


def test_all_members_healthy(members):
    report = json.loads(etcdctl(members["etcd-1"], "endpoint health --cluster -w json"))
    assert len(report) == len(MEMBERS)
    assert all(entry["health"] for entry in report), report


def test_member_list(members):
    listing = json.loads(etcdctl(members["etcd-1"], "member list -w json"))
    assert sorted(m["name"] for m in listing["members"]) == sorted(MEMBERS)


def test_write_on_one_member_is_read_on_the_others(members):
    key, value = f"/hokusai-test/{uuid.uuid4()}", str(uuid.uuid4())
    etcdctl(members["etcd-1"], f"put {key} {value}")
    for name in ("etcd-2", "etcd-3"):
        # Serializable read answers from the member's own store, not via the leader.
        got = etcdctl(members[name], f"get {key} --print-value-only --consistency=s").strip()
        assert got == value, f"{name} returned {got!r}"


def test_writes_continue_with_one_member_stopped_and_it_catches_up(members):
    writer, survivor = members["etcd-1"], members["etcd-2"]
    endpoints = f"{client_url(writer)},{client_url(survivor)}"
    run = uuid.uuid4().hex
    with container_stopped("etcd-3"):
        for i in range(20):
            etcdctl(writer, f"put /hokusai-test/{run}/{i} v{i}", endpoints=endpoints)
        health = writer.run(f"{ETCDCTL} endpoint health --cluster -w json")
        assert health.rc != 0, "the stopped member still reports healthy: the container did not stop"
        count = etcdctl(writer, f"get /hokusai-test/{run}/ --prefix --keys-only -w json", endpoints=endpoints)
        assert json.loads(count)["count"] == 20
    rejoined = inventory_host("etcd-3")

    def caught_up() -> bool:
        got = rejoined.run(f"{ETCDCTL} get /hokusai-test/{run}/19 --print-value-only --consistency=s")
        return got.rc == 0 and got.stdout.strip() == "v19"

    wait_for(
        caught_up, timeout=90, interval=2, what="etcd-3 rejoining with the writes made while it was down"
    )
    report = json.loads(etcdctl(writer, "endpoint health --cluster -w json"))
    assert all(entry["health"] for entry in report), report
