"""Static checks of the Grafana dashboards and provisioning files (roles/prometheus/files/grafana/).

The live check — every panel query evaluated by a real Prometheus — is
molecule/monitoring/tests/test_dashboards.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DIR = ROOT / "roles" / "prometheus" / "files" / "grafana"
BOARDS = sorted(DIR.glob("*.json"))


def load_generator():
    spec = importlib.util.spec_from_file_location("dashboards_generate", DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_required_dashboards_exist():
    assert {"mlflow", "postgres", "minio", "nginx"} <= {p.stem for p in BOARDS}


def test_json_is_what_the_generator_produces():
    rendered = load_generator().render()
    assert sorted(rendered) == [p.name for p in BOARDS]
    stale = [name for name, text in rendered.items() if (DIR / name).read_text() != text]
    assert stale == [], "run: python3 dashboards/generate.py"


def test_uids_are_unique():
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_every_panel_queries_the_datasource_variable(path):
    board = json.loads(path.read_text())
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in board["templating"]["list"])
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["expr"].strip(), panel["title"]
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        ids = [t["refId"] for t in panel["targets"]]
        assert len(ids) == len(set(ids)), panel["title"]


def test_provisioning_files():
    provider = yaml.safe_load((DIR / "provisioning" / "dashboards" / "hokusai.yml").read_text())
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]
    source = yaml.safe_load((DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    assert source["datasources"][0]["uid"] == "prometheus"
