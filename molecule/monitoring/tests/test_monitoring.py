"""Verify the monitoring scenario: services, generated jobs, targets, rules,
and that an alert really reaches the webhook receiver when a host goes away.

Timings are printed (pytest -s / molecule's verbose verifier shows them), not
asserted: the delivery test only requires the alert to arrive at all within a
generous bound.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from labtools import container_stopped, inventory_host, wait_for

MON = "monitoring-mon"
# The alert rules the role ships: every one of them must be loaded.
RULES_DIR = Path(__file__).resolve().parents[3] / "roles" / "prometheus" / "files" / "rules"
SHIPPED_ALERTS = {
    rule["alert"]
    for path in sorted(RULES_DIR.glob("*.yml"))
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"]
    if "alert" in rule
}
TARGET = "monitoring-target"
RECEIVED = "/var/lib/alert-webhook-receiver/alerts.jsonl"
# The target is in the loadbalancer group (it runs the nginx exporter): its
# host-down alert is LoadBalancerNodeDown; any other host's is InstanceDown.
HOST_DOWN = "LoadBalancerNodeDown"
# Jobs generated from the scenario's inventory groups (the target is in every
# component group, the monitoring host in `monitoring`).
EXPECTED_JOBS = {
    "prometheus",
    "alertmanager",
    "node",
    "etcd",
    "patroni",
    "postgres",
    "minio_cluster",
    "minio_node",
    "mlflow",
    "blackbox_mlflow_instance",
    "nginx",
    "blackbox_mlflow_lb",
}
# Jobs whose exporters this scenario deploys: their targets must be up.
DEPLOYED_JOBS = {
    "prometheus",
    "alertmanager",
    "node",
    "postgres",
    "nginx",
    "blackbox_mlflow_instance",
    "blackbox_mlflow_lb",
}
# Components that are not installed here: rendered, scraped, and down.
ABSENT_JOBS = {"etcd", "patroni", "minio_cluster", "minio_node", "mlflow"}


@pytest.fixture(scope="module")
def mon():
    return inventory_host(MON)


@pytest.fixture(scope="module")
def target():
    return inventory_host(TARGET)


def get_json(host, url: str, **params: str):
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    return json.loads(host.check_output(f"curl -fsS --max-time 5 '{url}{query}'"))


def prom(host, path: str, **params: str):
    body = get_json(host, f"http://127.0.0.1:9090{path}", **params)
    assert body["status"] == "success", body
    return body["data"]


def targets(host) -> list[dict]:
    return prom(host, "/api/v1/targets", state="active")["activeTargets"]


def notifications(host) -> list[dict]:
    f = host.file(RECEIVED)
    if not f.exists:
        return []
    return [json.loads(line) for line in f.content_string.splitlines() if line.strip()]


def find(
    notes: list[dict], alertname: str, status: str, host: str | None = None, after: float = 0.0
) -> dict | None:
    """First notification received after AFTER carrying ALERTNAME with STATUS (for HOST)."""
    for note in notes:
        if note["received_at"] < after:
            continue
        for alert in note["payload"].get("alerts", []):
            labels = alert["labels"]
            if (
                labels.get("alertname") == alertname
                and alert["status"] == status
                and (host is None or labels.get("host") == host)
            ):
                return note
    return None


def test_monitoring_services_running(mon):
    for name in (
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-blackbox-exporter",
        "prometheus-node-exporter",
        "alert-webhook-receiver",
    ):
        service = mon.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


def test_target_exporters_follow_its_groups(target):
    for name in ("prometheus-node-exporter", "prometheus-postgres-exporter", "prometheus-nginx-exporter"):
        assert target.service(name).is_running, name
    assert not target.package("prometheus-blackbox-exporter").is_installed


def test_configs_validate_on_the_host(mon):
    mon.check_output("promtool check config /etc/prometheus/prometheus.yml")
    mon.check_output("amtool check-config /etc/prometheus/alertmanager.yml")
    mon.check_output("prometheus-blackbox-exporter --config.check --config.file=/etc/prometheus/blackbox.yml")


def test_config_files_not_world_readable(mon):
    for path in ("/etc/prometheus/prometheus.yml", "/etc/prometheus/alertmanager.yml"):
        f = mon.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640), path


def test_every_component_job_is_generated_from_the_inventory(mon):
    jobs = {t["labels"]["job"] for t in targets(mon)}
    assert jobs == EXPECTED_JOBS


def test_every_target_carries_its_host_label(mon):
    assert all(t["labels"].get("host") in (MON, TARGET) for t in targets(mon))


def test_deployed_targets_are_up(mon):
    def all_up():
        pending = [
            (t["labels"]["job"], t["labels"]["host"], t["lastError"])
            for t in targets(mon)
            if t["labels"]["job"] in DEPLOYED_JOBS and t["health"] != "up"
        ]
        return not pending or None

    wait_for(all_up, timeout=60, interval=2, what="all deployed targets up")
    # The nginx exporter reaches nginx's stub_status on the target.
    result = prom(mon, "/api/v1/query", query=f'nginx_up{{host="{TARGET}"}}')["result"]
    assert [r["value"][1] for r in result] == ["1"]


def test_absent_components_render_and_are_reported_down(mon):
    down = {
        t["labels"]["job"]
        for t in targets(mon)
        if t["labels"]["job"] in ABSENT_JOBS and t["health"] == "down"
    }
    assert down == ABSENT_JOBS


def test_every_alert_rule_is_loaded_with_its_labels(mon):
    rules = [r for g in prom(mon, "/api/v1/rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]
    assert len(SHIPPED_ALERTS) >= 19
    assert {r["name"] for r in rules} == SHIPPED_ALERTS
    assert len(rules) == len(SHIPPED_ALERTS)
    assert all(r["labels"]["severity"] in ("critical", "warning", "none") for r in rules)
    assert all(r["annotations"]["runbook_url"].startswith("docs/runbooks/") for r in rules)
    durations = {r["name"]: r["duration"] for r in rules}
    assert durations["InstanceDown"] == 4  # the scenario's override
    assert durations["LoadBalancerNodeDown"] == 4
    assert durations["PostgresDown"] == 60  # the shipped value


def test_reload_keeps_process_and_data(mon):
    """The role's handlers reload (SIGHUP) instead of restarting: same process, history intact."""

    def scalar(query: str) -> float:
        return float(prom(mon, "/api/v1/query", query=query)["result"][0]["value"][1])

    started = scalar('process_start_time_seconds{job="prometheus"}')
    before = scalar("prometheus_tsdb_head_series")
    last_reload = scalar("prometheus_config_last_reload_success_timestamp_seconds")
    mon.check_output("systemctl reload prometheus")
    wait_for(
        lambda: scalar("prometheus_config_last_reload_success_timestamp_seconds") > last_reload,
        timeout=30,
        what="a successful configuration reload",
    )
    assert scalar("prometheus_config_last_reload_successful") == 1
    assert scalar('process_start_time_seconds{job="prometheus"}') == started
    # Samples scraped before the reload are still there.
    assert scalar('count_over_time(up{job="node"}[10m])') > 0
    assert scalar("prometheus_tsdb_head_series") >= before


def test_watchdog_reaches_the_receiver(mon):
    note = wait_for(
        lambda: find(notifications(mon), "Watchdog", "firing"),
        timeout=90,
        interval=2,
        what="Watchdog notification in the webhook receiver",
    )
    assert note["path"] == "/alerts"


def test_stopped_host_alert_reaches_the_receiver(mon):
    """Stop the target's container; its host-down alert must reach the webhook receiver,
    the host's component alerts must be inhibited, and it must resolve after restart."""
    # Precondition: the target is up and no host-down alert fires for it.
    wait_for(
        lambda: (
            not prom(mon, "/api/v1/query", query=f'ALERTS{{alertname="{HOST_DOWN}",host="{TARGET}"}}')[
                "result"
            ]
        ),
        timeout=60,
        interval=2,
        what=f"no {HOST_DOWN} for the target before the test",
    )
    t0 = time.time()
    with container_stopped(TARGET):
        stopped = time.time()
        note = wait_for(
            lambda: find(notifications(mon), HOST_DOWN, "firing", TARGET, after=t0),
            timeout=120,
            interval=0.5,
            what=f"{HOST_DOWN} notification for the stopped target",
        )
        delivered = note["received_at"]
        print(
            f"\n[alert-delivery] docker stop took {stopped - t0:.1f} s; {HOST_DOWN} reached the receiver "
            f"{delivered - t0:.1f} s after the stop began "
            f"({delivered - stopped:.1f} s after the container was down)"
        )

        # Inhibition: the target's other active alerts are suppressed by its host-down alert.
        def inhibited():
            alerts = get_json(mon, "http://127.0.0.1:9093/api/v2/alerts", active="true", inhibited="true")
            others = [
                a
                for a in alerts
                if a["labels"].get("host") == TARGET and a["labels"]["alertname"] != HOST_DOWN
            ]
            return others if others and all(a["status"]["inhibitedBy"] for a in others) else None

        others = wait_for(inhibited, timeout=30, interval=1, what="the target's component alerts inhibited")
        print(
            "[alert-delivery] inhibited while the host is down:",
            sorted({a["labels"]["alertname"] for a in others}),
        )
    restarted = time.time()
    note = wait_for(
        lambda: find(notifications(mon), HOST_DOWN, "resolved", TARGET, after=restarted),
        timeout=180,
        interval=1,
        what=f"{HOST_DOWN} resolved notification after restart",
    )
    print(
        f"[alert-delivery] resolved notification {note['received_at'] - restarted:.1f} s after docker start"
    )
