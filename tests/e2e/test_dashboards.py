"""Every Grafana panel query returns data on the full lab (`make e2e`).

The Molecule scenario (molecule/monitoring) only proves that the queries
parse: most components are absent there, so an empty answer is accepted and a
misspelled metric name passes. Here, on the whole stack, each panel query runs
as Grafana would (a range query over the last minutes) against the lab's
Prometheus and must return at least one series, and every metric name a query
uses must be one Prometheus knows.

The only panels allowed to be empty are those that show trouble (errors,
firing alerts): EMPTY_WHEN_HEALTHY, and the root file system panel, which
has no series on containers: EMPTY_IN_LAB. Their metric names are still
checked, except the few that exist only once something happened.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

DASHBOARDS = Path(__file__).resolve().parents[2] / "roles" / "prometheus" / "files" / "grafana"
PROMETHEUS = ("http://172.28.10.51:9090", "http://172.28.10.52:9090")
# Grafana's built-in interval variables, replaced as Grafana would at a 15 s step.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Panel queries with no series on a healthy lab: they count failures.
EMPTY_WHEN_HEALTHY = {
    "overview/Firing alerts/A",
    "mlflow/5xx ratio/A",
    "minio/S3 errors/A",
    "minio/S3 errors/B",
}
# Panel queries with no series in the lab only: the containers' / is an overlay
# file system, which node_exporter leaves out by default (real hosts have one).
EMPTY_IN_LAB = {"overview/Root filesystem free by host/A"}
# Metric names that exist only while something happens: ALERTS while an alert is
# pending or firing; MinIO's 5xx counter per API once such an error happened
# (getS3Requests5xxErrorsMD in MinIO's cmd/metrics-v2.go, the same name).
EPHEMERAL_METRICS = {"ALERTS", "minio_s3_requests_5xx_errors_total"}
# PromQL words that look like metric names in the expressions we use.
PROMQL_WORDS = {
    "by",
    "on",
    "and",
    "or",
    "unless",
    "without",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
}


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in GRAFANA_VARS.items():
                    expr = expr.replace(var, value)
                out.append((f"{path.stem}/{panel['title']}/{target['refId']}", expr))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions,
    keywords, label matchers, grouping labels or durations."""
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range durations
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)", expr):
        if match.group(1) is None and match.group(0) not in PROMQL_WORDS:
            names.add(match.group(0))
    return names


def get(path: str, **params: Any) -> Any:
    errors = []
    for base in PROMETHEUS:
        url = f"{base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - lab addresses only
                return json.load(resp)
        except OSError as exc:
            errors.append(f"{base}: {exc}")
    raise RuntimeError("no Prometheus answers: " + "; ".join(errors))


QUERIES = panel_queries()


@pytest.fixture(scope="module")
def known_metrics() -> set[str]:
    end = int(time.time())
    body = get("/api/v1/label/__name__/values", start=end - 3600, end=end)
    assert body["status"] == "success", body
    return set(body["data"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (api) (rate(minio_s3_x{a="b"}[1m]))', {"minio_s3_x"}),
        ("max by (s) (a_b) - on (s) group_right () (c_d and on (i) e_f == 1)", {"a_b", "c_d", "e_f"}),
        ("probe_ssl_expiry{job='x'} - time()", {"probe_ssl_expiry"}),
    ],
)
def test_metric_names_are_parsed(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboards_use_only_known_metric_names(known_metrics: set[str]) -> None:
    unknown = {
        panel: sorted(metric_names(expr) - known_metrics - EPHEMERAL_METRICS)
        for panel, expr in QUERIES
        if metric_names(expr) - known_metrics - EPHEMERAL_METRICS
    }
    assert not unknown, f"metric names Prometheus does not know (misspelled or not scraped): {unknown}"


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_panel_returns_data(panel: str, expr: str) -> None:
    end = int(time.time())
    body = get("/api/v1/query_range", query=expr, start=end - 600, end=end, step=15)
    assert body["status"] == "success", f"{panel}: {body.get('errorType')}: {body.get('error')}"
    if panel in EMPTY_WHEN_HEALTHY | EMPTY_IN_LAB:
        return
    assert body["data"]["result"], f"{panel}: no data on the lab for {expr!r}"
