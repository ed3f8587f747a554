"""Run every Grafana panel query (roles/prometheus/files/grafana/*.json) against the scenario's
Prometheus as a range query, as Grafana would, and fail on any query error.
Empty results are fine: most components are not installed in this scenario."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest
from labtools import inventory_host

DASHBOARDS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "roles" / "prometheus" / "files" / "grafana"
# Grafana's built-in interval variables, replaced as Grafana would at a 15 s step.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{path.stem}/{panel['title']}/{t['refId']}", t["expr"]))
    return out


QUERIES = queries()


@pytest.fixture(scope="module")
def mon():
    return inventory_host("monitoring-mon")


def test_dashboards_have_queries():
    assert len(QUERIES) >= 20


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_panel_query_evaluates(mon, panel, expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"{panel}: unresolved variable in {expr!r}"
    end = int(time.time())
    params = urllib.parse.urlencode({"query": expr, "start": end - 600, "end": end, "step": 15})
    # No -f: a bad query answers 400 with an error body, which is what we report.
    body = json.loads(
        mon.check_output(f"curl -sS --max-time 10 'http://127.0.0.1:9090/api/v1/query_range?{params}'")
    )
    assert body["status"] == "success", f"{panel}: {body.get('errorType')}: {body.get('error')}"
