"""hokusai_prometheus_health: decisions on answers recorded from the lab (fixtures/prometheus)."""

from __future__ import annotations

import pytest
from health_helpers import FakeHttp, answer, answer_from, load_module, no_answer, run_main

prom = load_module("hokusai_prometheus_health")

READY = answer("http://127.0.0.1:9090/-/ready", 200, "Prometheus Server is Ready.")
AM_READY = answer("http://127.0.0.1:9093/-/ready", 200, "OK")
NO_ALERTS = answer("http://127.0.0.1:9090/api/v1/alerts", 200, '{"status":"success","data":{"alerts":[]}}')


def test_recorded_targets_all_up():
    result = prom.evaluate(
        READY, answer_from("prometheus", "targets_all_up.json"), NO_ALERTS, AM_READY, ["Watchdog"]
    )
    assert result["healthy"] is True
    assert (result["targets_up"], result["targets_total"]) == (36, 36)


def test_recorded_targets_minio4_stopped():
    result = prom.evaluate(
        READY, answer_from("prometheus", "targets_minio4_down.json"), NO_ALERTS, AM_READY, []
    )
    assert result["healthy"] is False
    assert [d["instance"] for d in result["targets_down"]] == ["minio4:9000", "minio4:9000", "minio4:9100"]
    assert result["problems"][0].startswith(
        'prometheus target minio_cluster/minio4:9000: down (Get "https://minio4:9000/minio/v2/metrics/cluster"'
    )


@pytest.mark.parametrize(
    ("fixture", "ignore", "names"),
    [
        # Recorded while the Patroni hosts were re-converged: PostgresDown on db1-3 firing,
        # a lag alert pending.
        (
            "alerts_postgres_down_firing.json",
            ["Watchdog"],
            [
                "alert PostgresDown on db1:9187",
                "alert PostgresDown on db2:9187",
                "alert PostgresDown on db3:9187",
            ],
        ),
        (
            "alerts_after_minio4_stop.json",
            ["Watchdog", "PostgresDown", "PatroniReplicationLagHigh"],
            ["alert MinioNodeOffline on minio_cluster", "alert MinioNodeOffline on minio_node"],
        ),
        ("alerts_postgres_down_firing.json", ["Watchdog", "PostgresDown"], []),
        (
            "alerts_postgres_down_firing.json",
            [],
            [
                "alert PostgresDown on db1:9187",
                "alert PostgresDown on db2:9187",
                "alert PostgresDown on db3:9187",
                "alert Watchdog",
            ],
        ),
    ],
    ids=["postgres-down", "minio-node-offline", "all-ignored", "watchdog-not-ignored"],
)
def test_recorded_alerts(fixture, ignore, names):
    checks, firing = prom.alert_checks(answer_from("prometheus", fixture)["json"], ignore)
    assert [c["name"] for c in checks if not c["healthy"]] == names
    assert all(a["state"] != "pending" for a in firing if "state" in a)
    assert "PatroniReplicationLagHigh" not in [
        a["alertname"] for a in firing if fixture.startswith("alerts_postgres")
    ]


def test_not_ready_and_alertmanager_down():
    result = prom.evaluate(
        answer("http://127.0.0.1:9090/-/ready", 503, "Service Unavailable"),
        answer_from("prometheus", "targets_all_up.json"),
        NO_ALERTS,
        no_answer("http://127.0.0.1:9093/-/ready"),
        ["Watchdog"],
    )
    assert result["problems"] == [
        "prometheus Prometheus: not ready: http://127.0.0.1:9090/-/ready answered HTTP 503",
        "prometheus Alertmanager: not ready: no answer from http://127.0.0.1:9093/-/ready: "
        "[Errno 111] Connection refused",
    ]


def test_main_default_ignores_watchdog(monkeypatch):
    http = FakeHttp(
        {
            "http://127.0.0.1:9090/-/ready": READY,
            "http://127.0.0.1:9093/-/ready": AM_READY,
            "http://127.0.0.1:9090/api/v1/targets": answer_from("prometheus", "targets_all_up.json"),
            "http://127.0.0.1:9090/api/v1/alerts": answer_from(
                "prometheus", "alerts_postgres_down_firing.json"
            ),
        }
    )
    monkeypatch.setattr(prom, "http_get", http)
    result, code = run_main(prom, {})
    assert code == 0 and result["healthy"] is False
    assert [a["alertname"] for a in result["firing"] if a["ignored"]] == ["Watchdog"]
    assert len(result["problems"]) == 3


def test_main_without_alertmanager(monkeypatch):
    http = FakeHttp(
        {
            "http://127.0.0.1:9090/-/ready": READY,
            "http://127.0.0.1:9090/api/v1/targets": answer_from("prometheus", "targets_all_up.json"),
            "http://127.0.0.1:9090/api/v1/alerts": NO_ALERTS,
        }
    )
    monkeypatch.setattr(prom, "http_get", http)
    result, code = run_main(prom, {"alertmanager_url": ""})
    assert code == 0 and result["healthy"] is True
    assert not any("9093" in c[0] for c in http.calls)


# ---------------------------------------------------------------- the monitoring pair
# Recorded in the lab with mon1 and mon2 (fixtures/README.md). Names resolve through a
# fake resolver, as Docker's DNS does in the lab.
LAB_DNS = {"mon1": ["172.28.10.51"], "mon2": ["172.28.10.52"]}


def lab_resolver(name):
    return LAB_DNS.get(name, [])


def test_prometheus_peers_both_up():
    peer, up = prom.prometheus_peer_check(
        {"status": "success", "data": {"activeTargets": [
            {"labels": {"job": "prometheus", "host": "mon1"}, "health": "up"},
            {"labels": {"job": "prometheus", "host": "mon2"}, "health": "up"},
        ]}},
        ["mon1", "mon2"],
    )  # fmt: skip
    assert peer == {"name": "Prometheus peers", "healthy": True, "detail": "2/2 up: mon1, mon2"}
    assert up == ["mon1", "mon2"]


def test_recorded_prometheus_peer_down_is_named():
    targets = answer_from("prometheus", "targets_prometheus_peer_down.json")
    peer, up = prom.prometheus_peer_check(targets["json"], ["mon1", "mon2"])
    assert up == ["mon1"]
    assert peer["healthy"] is False
    assert peer["detail"] == "1/2 up: mon1; missing mon2 (down)"


def test_prometheus_peer_not_scraped_at_all():
    peer, _ = prom.prometheus_peer_check({"data": {"activeTargets": []}}, ["mon1", "mon3"])
    assert peer["detail"] == "0/2 up: none; missing mon1 (not scraped), mon3 (not scraped)"


def test_recorded_alertmanager_cluster_ready():
    row, info = prom.alertmanager_cluster_check(
        answer_from("prometheus", "am_status_cluster_ready.json"), ["mon1", "mon2"], lab_resolver
    )
    assert row == {
        "name": "Alertmanager cluster",
        "healthy": True,
        "detail": "ready, 2/2 members: mon1, mon2",
    }
    assert info["peers"] == ["172.28.10.51:9094", "172.28.10.52:9094"]
    assert info["missing"] == []


def test_recorded_alertmanager_peer_stopped_is_named():
    row, info = prom.alertmanager_cluster_check(
        answer_from("prometheus", "am_status_peer_stopped.json"), ["mon1", "mon2"], lab_resolver
    )
    assert row["healthy"] is False
    assert row["detail"] == "ready, 1/2 members: mon1; missing mon2 (172.28.10.52)"
    assert info["seen"] == ["mon1"] and info["missing"] == ["mon2"]


@pytest.mark.parametrize(
    ("peers", "healthy", "detail"),
    [
        # Explicit advertise addresses need no name resolution.
        (["mon1=172.28.10.51:9094", "mon2=172.28.10.52:9094"], True, "ready, 2/2 members: mon1, mon2"),
        (["mon1", "mon9"], False, "ready, 1/2 members: mon1; missing mon9 (does not resolve)"),
        (["mon1", "mon2=10.0.0.9"], False, "ready, 1/2 members: mon1; missing mon2 (10.0.0.9)"),
    ],
    ids=["addresses-given", "name-does-not-resolve", "wrong-address"],
)
def test_alertmanager_peer_specs(peers, healthy, detail):
    row, _ = prom.alertmanager_cluster_check(
        answer_from("prometheus", "am_status_cluster_ready.json"), peers, lab_resolver
    )
    assert (row["healthy"], row["detail"]) == (healthy, detail)


def test_alertmanager_cluster_settling_or_unanswered():
    settling = answer(
        "http://127.0.0.1:9093/api/v2/status",
        200,
        '{"cluster": {"status": "settling", "peers": [{"address": "172.28.10.51:9094"}]}}',
    )
    row, _ = prom.alertmanager_cluster_check(settling, ["mon1"], lab_resolver)
    assert (row["healthy"], row["detail"]) == (False, "settling, 1/1 members: mon1")
    row, _ = prom.alertmanager_cluster_check(no_answer("http://127.0.0.1:9093/api/v2/status"), ["mon1"])
    assert row["healthy"] is False and row["detail"].startswith("no status: no answer from")


def test_address_forms():
    assert prom.address_host("172.28.10.51:9094") == "172.28.10.51"
    assert prom.address_host("[fd00::1]:9094") == "fd00::1"
    assert prom.address_host("fd00::1") == "fd00::1"
    assert prom.split_peer("mon1") == ("mon1", None)
    assert prom.split_peer("mon1=172.28.10.51:9094") == ("mon1", "172.28.10.51:9094")


def test_main_reports_both_sides_of_the_pair(monkeypatch):
    """main() with the peers health.yml passes: the recorded cluster without mon2 fails, naming it."""
    http = FakeHttp(
        {
            "http://127.0.0.1:9090/-/ready": READY,
            "http://127.0.0.1:9093/-/ready": AM_READY,
            "http://127.0.0.1:9093/api/v2/status": answer_from("prometheus", "am_status_peer_stopped.json"),
            "http://127.0.0.1:9090/api/v1/targets": answer_from(
                "prometheus", "targets_prometheus_peer_down.json"
            ),
            "http://127.0.0.1:9090/api/v1/alerts": NO_ALERTS,
        }
    )
    monkeypatch.setattr(prom, "http_get", http)
    monkeypatch.setattr(prom, "resolve", lab_resolver)
    result, code = run_main(
        prom, {"prometheus_peers": ["mon1", "mon2"], "alertmanager_peers": ["mon1", "mon2"]}
    )
    assert code == 0 and result["healthy"] is False
    assert result["prometheus_peers_up"] == ["mon1"]
    assert result["alertmanager_cluster"]["missing"] == ["mon2"]
    assert (
        "prometheus Alertmanager cluster: ready, 1/2 members: mon1; missing mon2 (172.28.10.52)"
        in result["problems"]
    )
    assert "prometheus Prometheus peers: 1/2 up: mon1; missing mon2 (down)" in result["problems"]


def test_main_single_alertmanager_skips_the_cluster(monkeypatch):
    http = FakeHttp(
        {
            "http://127.0.0.1:9090/-/ready": READY,
            "http://127.0.0.1:9093/-/ready": AM_READY,
            "http://127.0.0.1:9090/api/v1/targets": answer_from("prometheus", "targets_all_up.json"),
            "http://127.0.0.1:9090/api/v1/alerts": NO_ALERTS,
        }
    )
    monkeypatch.setattr(prom, "http_get", http)
    result, code = run_main(prom, {"alertmanager_peers": ["mon1"]})
    assert code == 0 and result["healthy"] is True
    assert not any("api/v2/status" in c[0] for c in http.calls)
    assert result["alertmanager_cluster"] == {}
