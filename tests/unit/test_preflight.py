"""site.yml refuses a bad inventory before it changes any host.

The inventories here use local connections: the point is that the run stops
in preflight, so no host is ever touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_site(tmp_path: Path, groups: dict[str, list[str]]) -> subprocess.CompletedProcess[str]:
    hosts = {h for members in groups.values() for h in members}
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
            "hosts": {h: {} for h in sorted(hosts)},
            "children": {g: {"hosts": {h: {} for h in members}} for g, members in groups.items()},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "site.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_stopped_unchanged(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result.stdout
    recap = result.stdout.split("PLAY RECAP", 1)[-1]
    assert "changed=0" in recap
    assert "changed=1" not in recap and "changed=2" not in recap


def test_missing_etcd_group_is_refused(tmp_path: Path) -> None:
    result = run_site(tmp_path, {"minio": ["m1"]})
    assert_stopped_unchanged(result)
    assert "no hosts in group 'etcd'" in result.stdout


@pytest.mark.parametrize("members", [["e1", "e2"], ["e1", "e2", "e3", "e4"]], ids=["2", "4"])
def test_even_etcd_group_is_refused(tmp_path: Path, members: list[str]) -> None:
    result = run_site(tmp_path, {"etcd": members})
    assert_stopped_unchanged(result)
    assert "odd number of members" in result.stdout
    assert f"has {len(members)}" in result.stdout
