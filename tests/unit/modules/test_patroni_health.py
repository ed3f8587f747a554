"""hokusai_patroni_health: decisions on /cluster documents recorded from the lab (fixtures/patroni)."""

from __future__ import annotations

import copy

import pytest
from health_helpers import FakeHttp, answer_from, fixture_json, load_module, no_answer, run_main

patroni = load_module("hokusai_patroni_health")

LAGGING = fixture_json("patroni", "cluster_replica_running_lagging.json")
MIB16 = 16 * 1024 * 1024


def healthy_cluster():
    """The recorded cluster with db2 as it looks when it streams (db1's recorded values)."""
    doc = copy.deepcopy(LAGGING)
    db1 = next(m for m in doc["members"] if m["name"] == "db1")
    db2 = next(m for m in doc["members"] if m["name"] == "db2")
    db2.update({k: db1[k] for k in ("state", "timeline", "lag", "receive_lag", "replay_lag")})
    return doc


def test_recorded_lagging_replica_is_unhealthy():
    # Recorded while db2 was being re-converged: running, not streaming, 16 MiB behind, no timeline.
    result = patroni.evaluate(LAGGING, 1024 * 1024, True, ["db1", "db2", "db3"])
    assert result["healthy"] is False
    assert result["leader"] == "db3"
    assert result["sync_standby"] == ["db1"]
    assert result["problems"] == [
        "patroni db2: replica: running, not streaming from the leader; "
        "lags 16.0 MiB behind the leader (limit 1.0 MiB)"
    ]


def test_recorded_db2_stopped():
    # `docker stop hokusai-lab-db2`: Patroni keeps the member, stopped, with lag "unknown".
    result = patroni.evaluate(
        fixture_json("patroni", "cluster_db2_stopped.json"), MIB16, True, ["db1", "db2", "db3"]
    )
    assert result["healthy"] is False
    assert result["problems"] == [
        "patroni db2: replica: stopped, not streaming from the leader; lag unknown ('unknown')"
    ]


def test_lag_limit_is_a_parameter():
    doc = copy.deepcopy(LAGGING)
    next(m for m in doc["members"] if m["name"] == "db2")["state"] = "streaming"
    assert patroni.evaluate(doc, 32 * 1024 * 1024, True, [])["healthy"] is True
    assert patroni.evaluate(doc, 8 * 1024 * 1024, True, [])["healthy"] is False


def test_healthy_cluster():
    result = patroni.evaluate(healthy_cluster(), MIB16, True, ["db1", "db2", "db3"])
    assert result["healthy"] is True, result["problems"]
    assert result["replicas"] == ["db1", "db2"]


def _mutate(doc, name, **changes):
    member = next(m for m in doc["members"] if m["name"] == name)
    for key, value in changes.items():
        if value is None:
            member.pop(key, None)
        else:
            member[key] = value
    return doc


@pytest.mark.parametrize(
    ("mutate", "sync_mode", "expected"),
    [
        (
            lambda d: _mutate(d, "db3", state="stopped"),
            True,
            "patroni leader: no running leader (leader members: db3 stopped)",
        ),
        (
            lambda d: {"members": [m for m in d["members"] if m["name"] != "db3"]},
            True,
            "patroni leader: no running leader",
        ),
        (
            lambda d: _mutate(d, "db1", role="replica"),
            True,
            "patroni sync standby: synchronous mode is on but no",
        ),
        (
            lambda d: _mutate(d, "db2", timeline=1),
            True,
            "patroni db2: replica: on timeline 1, the leader on 2",
        ),
        (lambda d: _mutate(d, "db2", lag="unknown"), True, "patroni db2: replica: lag unknown ('unknown')"),
        (
            lambda d: {"members": [m for m in d["members"] if m["name"] != "db2"]},
            True,
            "patroni db2: expected member",
        ),
    ],
    ids=[
        "leader-stopped",
        "no-leader",
        "no-sync-standby",
        "timeline-mismatch",
        "lag-unknown",
        "member-missing",
    ],
)
def test_unhealthy_states(mutate, sync_mode, expected):
    result = patroni.evaluate(mutate(healthy_cluster()), MIB16, sync_mode, ["db1", "db2", "db3"])
    assert result["healthy"] is False
    assert any(p.startswith(expected) for p in result["problems"]), result["problems"]


def test_no_sync_standby_is_fine_without_synchronous_mode():
    doc = _mutate(healthy_cluster(), "db1", role="replica")
    assert patroni.evaluate(doc, MIB16, False, [])["healthy"] is True


def test_synchronous_mode_read_from_config_when_not_given():
    doc = _mutate(healthy_cluster(), "db1", role="replica")
    http = FakeHttp(
        {
            "http://127.0.0.1:8008/cluster": {
                **answer_from("patroni", "cluster_replica_running_lagging.json"),
                "json": doc,
            },
            "http://127.0.0.1:8008/config": answer_from("patroni", "config_sync_mode.json"),
        }
    )
    result = patroni.probe(http, "http://127.0.0.1:8008", MIB16, None, [])
    assert result["synchronous_mode"] is True  # the recorded /config has synchronous_mode: true
    assert (
        "patroni sync standby: synchronous mode is on but no synchronous standby streams"
        in result["problems"]
    )


def test_rest_api_down():
    result = patroni.probe(FakeHttp({}), "http://127.0.0.1:8008", MIB16, True, [])
    assert result["healthy"] is False
    assert result["problems"] == [
        "patroni REST API: no answer from http://127.0.0.1:8008/cluster: [Errno 111] Connection refused"
    ]


def test_main_reports_recorded_cluster(monkeypatch):
    monkeypatch.setattr(
        patroni,
        "http_get",
        FakeHttp(
            {
                "http://127.0.0.1:8008/cluster": answer_from(
                    "patroni", "cluster_replica_running_lagging.json"
                ),
                "http://127.0.0.1:8008/config": answer_from("patroni", "config_sync_mode.json"),
            }
        ),
    )
    result, code = run_main(patroni, {"max_lag_bytes": MIB16, "expected_members": ["db1", "db2", "db3"]})
    assert code == 0 and result["changed"] is False
    assert result["healthy"] is False and result["leader"] == "db3"


def test_main_bad_arguments(monkeypatch):
    monkeypatch.setattr(patroni, "http_get", lambda url, **kw: no_answer(url))
    result, code = run_main(patroni, {"max_lag_bytes": -1})
    assert code == 1 and "max_lag_bytes must be 0 or more" in result["msg"]
    result, code = run_main(patroni, {"username": "u"})
    assert code == 1 and "parameters are required together" in result["msg"]
