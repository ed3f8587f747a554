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
