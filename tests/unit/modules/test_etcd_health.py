"""hokusai_etcd_health: decisions on answers recorded from the lab's etcd (fixtures/etcd)."""

from __future__ import annotations

import pytest
from health_helpers import FakeHttp, answer_from, load_module, no_answer, run_main

etcd = load_module("hokusai_etcd_health")

URLS = {n: f"https://172.28.10.1{n[-1]}:2379" for n in ("db1", "db2", "db3")}


def lab_table(**overrides):
    """URL prefix -> recorded answer for the healthy lab; overrides replace a member's answers."""
    table = {URLS["db1"] + "/v2/members": answer_from("etcd", "members.json")}
    for name, url in URLS.items():
        table[url + "/health"] = answer_from("etcd", f"health_{name}.json", url + "/health")
        table[url + "/v2/stats/self"] = answer_from("etcd", f"stats_self_{name}.json", url + "/v2/stats/self")
    table.update(overrides)
    return table


def test_healthy_cluster_recorded():
    result = etcd.probe([URLS["db1"]], ["db1", "db2", "db3"], FakeHttp(lab_table()))
    assert result["healthy"] is True
    assert result["problems"] == []
    assert result["leader"] == "db2"
    assert [m["name"] for m in result["members"]] == ["db1", "db2", "db3"]
    assert {c["name"]: c["detail"] for c in result["checks"]}["db2"] == "healthy, leader"


DB3_DOWN = {
    URLS["db3"] + "/health": no_answer(URLS["db3"] + "/health"),
    URLS["db3"] + "/v2/stats/self": no_answer(URLS["db3"] + "/v2/stats/self"),
}
# etcd answers 503 {"health": "false"} when the member has no leader; the body here is
# the recorded one with the value flipped (an etcd without quorum was not recorded).
DB1_NO_LEADER = {
    URLS["db1"] + "/health": answer_from("etcd", "health_db1.json", URLS["db1"] + "/health", 503)
    | {"json": {"health": "false"}}
}


@pytest.mark.parametrize(
    ("overrides", "expected_problem"),
    [
        (DB3_DOWN, "etcd db3: unhealthy: no answer from https://172.28.10.13:2379/health"),
        (DB1_NO_LEADER, "etcd db1: unhealthy: /health says 'false'"),
    ],
    ids=["member-down", "member-health-false"],
)
def test_unhealthy_member(overrides, expected_problem):
    result = etcd.probe([URLS["db1"]], ["db1", "db2", "db3"], FakeHttp(lab_table(**overrides)))
    assert result["healthy"] is False
    assert any(p.startswith(expected_problem) for p in result["problems"]), result["problems"]


def test_recorded_db2_stopped():
    # `docker stop hokusai-lab-db2` (the etcd leader then): db1 took over, db2 timed out from the controller.
    table = {
        URLS["db1"] + "/v2/members": answer_from("etcd", "db2_down_members.json"),
        URLS["db2"]: no_answer(URLS["db2"] + "/health", "timed out"),
    }
    for name in ("db1", "db3"):
        table[URLS[name] + "/health"] = answer_from("etcd", f"db2_down_health_{name}.json")
        table[URLS[name] + "/v2/stats/self"] = answer_from("etcd", f"db2_down_stats_self_{name}.json")
    result = etcd.probe([URLS["db1"]], ["db1", "db2", "db3"], FakeHttp(table))
    assert result["healthy"] is False
    assert result["leader"] == "db1"
    assert result["problems"] == [
        "etcd db2: unhealthy: no answer from https://172.28.10.12:2379/health: timed out"
    ]
    assert {c["name"]: c["detail"] for c in result["checks"]}[
        "leader"
    ] == "db1; 2/3 members healthy, quorum 2"


def test_no_member_list_when_every_endpoint_is_down():
    http = FakeHttp({})
    result = etcd.probe([URLS["db1"], URLS["db2"]], [], http)
    assert result["healthy"] is False
    assert result["problems"][0].startswith("etcd cluster: member list unknown (no answer from")
    assert [c[0] for c in http.calls] == [URLS["db1"] + "/v2/members", URLS["db2"] + "/v2/members"]


def test_members_disagree_on_leader():
    # db3 recorded as follower of db2; pretend db1 follows db3 (a split view).
    views = [
        etcd.member_view(
            m,
            answer_from("etcd", f"health_{m['name']}.json"),
            answer_from("etcd", f"stats_self_{m['name']}.json"),
        )
        for m in answer_from("etcd", "members.json")["json"]["members"]
    ]
    views[0]["leader_id"] = views[1]["id"] if views[1]["leader_id"] != views[1]["id"] else views[0]["id"]
    result = etcd.evaluate(answer_from("etcd", "members.json"), views, [], [])
    assert not result["healthy"]
    assert any("disagree on the leader" in p for p in result["problems"])


def test_missing_expected_member_and_foreign_endpoint():
    result = etcd.probe(
        [URLS["db1"], "https://10.9.9.9:2379"], ["db1", "db2", "db3", "db4"], FakeHttp(lab_table())
    )
    assert "etcd db4: expected member is not in the member list" in result["problems"]
    assert "etcd https://10.9.9.9:2379: endpoint is not the client URL of any member" in result["problems"]


def test_main_healthy(monkeypatch):
    http = FakeHttp(lab_table())
    monkeypatch.setattr(etcd, "http_get", http)
    result, code = run_main(
        etcd,
        {
            "endpoints": [URLS["db1"]],
            "expected_members": ["db1", "db2", "db3"],
            "ca_path": "/etc/etcd/tls/ca.crt",
            "client_cert": "/etc/etcd/tls/server.crt",
            "client_key": "/etc/etcd/tls/server.key",
        },
    )
    assert code == 0 and result["healthy"] is True and result["changed"] is False
    assert http.calls[0][1]["client_cert"] == "/etc/etcd/tls/server.crt"


def test_main_unhealthy_is_not_a_failure(monkeypatch):
    monkeypatch.setattr(etcd, "http_get", FakeHttp({}))
    result, code = run_main(etcd, {"endpoints": [URLS["db1"]]})
    assert code == 0 and result["healthy"] is False and "failed" not in result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"endpoints": []}, "endpoints must name at least one"),
        ({"endpoints": [URLS["db1"]], "client_cert": "/x.crt"}, "parameters are required together"),
        ({}, "missing required arguments: endpoints"),
    ],
)
def test_main_bad_arguments_fail(monkeypatch, args, message):
    monkeypatch.setattr(etcd, "http_get", FakeHttp({}))
    result, code = run_main(etcd, args)
    assert code == 1 and result["failed"] is True and message in result["msg"]
