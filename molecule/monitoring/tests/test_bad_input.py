"""Bad input never reaches the host: a rule file that does not validate is
refused by `promtool check rules` before it is installed, and Alertmanager's
preflight refuses a receiver without its required fields. Both run the real
playbook against this scenario's inventory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from labtools import inventory_host

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


def playbook(tmp_path: Path, extra_vars: dict, tags: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, ANSIBLE_ROLES_PATH=str(PROJECT / "roles"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"
    )
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(extra_vars))
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(PROJECT / "playbooks" / "monitoring.yml"),
            "--limit",
            "monitoring-mon",
            "--tags",
            tags,
            "-e",
            f"@{extra}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def mon():
    return inventory_host("monitoring-mon")


def test_invalid_rule_file_never_reaches_the_host(mon, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: sum(rate(up[5m]\n"
    )
    before = mon.file("/etc/prometheus/prometheus.yml").md5sum
    run = playbook(tmp_path, {"prometheus_extra_rule_files": [str(broken)]}, "prometheus_configure")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    assert "failed to validate" in out and "unclosed left parenthesis" in out, out[-2000:]
    assert not mon.file("/etc/prometheus/rules/extra-broken.yml").exists
    assert mon.file("/etc/prometheus/prometheus.yml").md5sum == before
    mon.check_output("curl -fsS --max-time 5 http://127.0.0.1:9090/-/ready")


def test_receiver_without_required_fields_is_refused(mon, tmp_path):
    before = mon.file("/etc/prometheus/alertmanager.yml").md5sum
    bad = {
        "alertmanager_receivers": [{"name": "oncall", "type": "email", "to": "oncall@example.org"}],
        "alertmanager_default_receiver": "oncall",
        "alertmanager_severity_receivers": {},
        "alertmanager_watchdog_receiver": "",
    }
    run = playbook(tmp_path, bad, "alertmanager_preflight")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    assert (
        "Receiver 'oncall': type 'email' needs the fields to, from, smarthost "
        "(missing or empty: from, smarthost)" in out
    )
    assert mon.file("/etc/prometheus/alertmanager.yml").md5sum == before
