"""Generate the Grafana dashboards in this directory (edit this file, not the JSON).

Usage: python3 roles/prometheus/files/grafana/generate.py   (rewrites the *.json beside it)

Every panel queries the datasource variable ${datasource} (uid `prometheus` in
provisioning/datasources/prometheus.yml). Queries use only Grafana's
$__rate_interval variable; tests substitute it before sending them to a real
Prometheus (molecule/monitoring/tests/test_dashboards.py).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(
    title: str, exprs: list[tuple[str, str]], kind: str = "timeseries", unit: str = "short", desc: str = ""
) -> dict:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict]) -> dict:
    laid_out = []
    for i, p in enumerate(panels):
        width = 8 if p["type"] == "stat" else 12
        p = {"id": i + 1, "gridPos": {"h": 8, "w": width, "x": (i % 2) * 12, "y": (i // 2) * 8}, **p}
        laid_out.append(p)
    return {
        "uid": uid,
        "title": title,
        "tags": ["hokusai"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "label": "Prometheus",
                }
            ]
        },
        "annotations": {"list": []},
        "panels": laid_out,
    }


RATE = "$__rate_interval"

DASHBOARDS = {
    "overview": dashboard(
        "hokusai-overview",
        "Hokusai / Overview",
        [
            panel(
                "Targets up by job",
                [("sum by (job) (up)", "{{job}} up"), ("count by (job) (up)", "{{job}} total")],
            ),
            panel(
                "Firing alerts",
                [
                    (
                        'sum by (alertname, severity) (ALERTS{alertstate="firing"})',
                        "{{alertname}} ({{severity}})",
                    )
                ],
            ),
            panel(
                "CPU busy by host",
                [(f'1 - avg by (host) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))', "{{host}}")],
                unit="percentunit",
            ),
            panel(
                "Memory available by host",
                [("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{host}}")],
                unit="percentunit",
            ),
            panel(
                "Root filesystem free by host",
                [
                    (
                        'node_filesystem_avail_bytes{mountpoint="/"}'
                        ' / node_filesystem_size_bytes{mountpoint="/"}',
                        "{{host}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Scrape duration by job", [("max by (job) (scrape_duration_seconds)", "{{job}}")], unit="s"
            ),
        ],
    ),
    "mlflow": dashboard(
        "hokusai-mlflow",
        "Hokusai / MLflow",
        [
            panel(
                "API through the load balancer",
                [('probe_success{job="blackbox_mlflow_lb"}', "{{instance}}")],
                kind="stat",
                desc="Blackbox probe of the REST API over HTTPS (CA checked); 1 = answering.",
            ),
            panel(
                "API per instance",
                [('probe_success{job="blackbox_mlflow_instance"}', "{{host}}")],
                kind="stat",
            ),
            panel("Metrics endpoint up", [('up{job="mlflow"}', "{{host}}")], kind="stat"),
            panel(
                "Requests by status",
                [(f"sum by (status) (rate(mlflow_http_request_total[{RATE}]))", "{{status}}")],
                unit="reqps",
            ),
            panel(
                "5xx ratio",
                [
                    (
                        f'sum(rate(mlflow_http_request_total{{status=~"5.."}}[{RATE}]))'
                        f" / sum(rate(mlflow_http_request_total[{RATE}]))",
                        "5xx",
                    )
                ],
                unit="percentunit",
                desc="MLflowHighErrorRate fires above 5% for 5m.",
            ),
            panel(
                "Latency p50 / p99",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) "
                        f"(rate(mlflow_http_request_duration_seconds_bucket[{RATE}])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) "
                        f"(rate(mlflow_http_request_duration_seconds_bucket[{RATE}])))",
                        "p99",
                    ),
                ],
                unit="s",
                desc="MLflowSlowRequests fires when p99 > 2 s for 10m.",
            ),
            panel(
                "Probe duration",
                [('probe_duration_seconds{job=~"blackbox_mlflow_.*"}', "{{job}} {{host}}")],
                unit="s",
            ),
            panel(
                "LB certificate expires in",
                [('probe_ssl_earliest_cert_expiry{job="blackbox_mlflow_lb"} - time()', "{{instance}}")],
                unit="s",
            ),
        ],
    ),
    "postgres": dashboard(
        "hokusai-postgres",
        "Hokusai / PostgreSQL and Patroni",
        [
            panel("Primary", [("patroni_primary", "{{name}}")], kind="stat"),
            panel("PostgreSQL running (Patroni)", [("patroni_postgres_running", "{{name}}")], kind="stat"),
            panel(
                "Cluster unlocked", [("max by (scope) (patroni_cluster_unlocked)", "{{scope}}")], kind="stat"
            ),
            panel(
                "Replication lag (bytes)",
                [
                    (
                        "max by (scope) (patroni_xlog_location) - on (scope) group_right () "
                        "(patroni_xlog_replayed_location and on (instance) patroni_replica == 1)",
                        "{{name}}",
                    )
                ],
                unit="bytes",
                desc="PatroniReplicationLagHigh fires above 16 MiB for 2m.",
            ),
            panel("Timeline", [("patroni_postgres_timeline", "{{name}}")]),
            panel("Exporter connected (pg_up)", [("pg_up", "{{host}}")], kind="stat"),
            panel(
                "Connections used",
                [
                    (
                        "sum by (host) (pg_stat_activity_count)"
                        " / on (host) max by (host) (pg_settings_max_connections)",
                        "{{host}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Connections by state",
                [("sum by (host, state) (pg_stat_activity_count)", "{{host}} {{state}}")],
            ),
            panel(
                "Commits per second",
                [(f"sum by (host) (rate(pg_stat_database_xact_commit[{RATE}]))", "{{host}}")],
                unit="ops",
            ),
            panel("etcd has leader", [("etcd_server_has_leader", "{{host}}")], kind="stat"),
            panel(
                "etcd leader changes (1h)",
                [("increase(etcd_server_leader_changes_seen_total[1h])", "{{host}}")],
            ),
        ],
    ),
    "minio": dashboard(
        "hokusai-minio",
        "Hokusai / MinIO",
        [
            panel(
                "Nodes online / offline",
                [
                    ("max(minio_cluster_nodes_online_total)", "online"),
                    ("max(minio_cluster_nodes_offline_total)", "offline"),
                ],
                kind="stat",
            ),
            panel(
                "Drives online / offline",
                [
                    ("max(minio_cluster_drive_online_total)", "online"),
                    ("max(minio_cluster_drive_offline_total)", "offline"),
                ],
                kind="stat",
            ),
            panel(
                "Write quorum margin per erasure set",
                [
                    (
                        "min by (pool, set) (minio_cluster_health_erasure_set_online_drives) "
                        "- on (pool, set) max by (pool, set) (minio_cluster_health_erasure_set_write_quorum)",
                        "pool {{pool}} set {{set}}",
                    )
                ],
                desc="MinioWriteQuorumAtRisk fires below 1.",
            ),
            panel(
                "Usable capacity",
                [
                    ("max(minio_cluster_capacity_usable_free_bytes)", "free"),
                    ("max(minio_cluster_capacity_usable_total_bytes)", "total"),
                ],
                unit="bytes",
            ),
            panel(
                "S3 requests",
                [(f"sum by (api) (rate(minio_s3_requests_total[{RATE}]))", "{{api}}")],
                unit="reqps",
            ),
            panel(
                "S3 errors",
                [
                    (f"sum(rate(minio_s3_requests_errors_total[{RATE}]))", "errors"),
                    (f"sum(rate(minio_s3_requests_5xx_errors_total[{RATE}]))", "5xx"),
                ],
                unit="reqps",
            ),
            panel("Drive free space", [("minio_node_drive_free_bytes", "{{host}} {{drive}}")], unit="bytes"),
            panel("Scrape up", [('up{job=~"minio_.*"}', "{{job}} {{host}}")], kind="stat"),
        ],
    ),
    "nginx": dashboard(
        "hokusai-nginx",
        "Hokusai / nginx load balancer",
        [
            panel("nginx up", [("nginx_up", "{{host}}")], kind="stat"),
            panel("Active connections", [("nginx_connections_active", "{{host}}")]),
            panel(
                "Requests per second",
                [(f"rate(nginx_http_requests_total[{RATE}])", "{{host}}")],
                unit="reqps",
            ),
            panel(
                "Connections accepted vs handled",
                [
                    (f"rate(nginx_connections_accepted[{RATE}])", "{{host}} accepted"),
                    (f"rate(nginx_connections_handled[{RATE}])", "{{host}} handled"),
                ],
            ),
            panel(
                "Connection states",
                [
                    ("nginx_connections_reading", "{{host}} reading"),
                    ("nginx_connections_writing", "{{host}} writing"),
                    ("nginx_connections_waiting", "{{host}} waiting"),
                ],
            ),
            panel(
                "MLflow through the LB: probe duration",
                [('probe_duration_seconds{job="blackbox_mlflow_lb"}', "{{instance}}")],
                unit="s",
            ),
        ],
    ),
}


def render() -> dict[str, str]:
    return {f"{name}.json": json.dumps(d, indent=2, sort_keys=True) + "\n" for name, d in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print("wrote", HERE / name)
