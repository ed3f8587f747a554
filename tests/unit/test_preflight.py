"""site.yml refuses a bad inventory before it changes any host.

The inventories here use local connections: the point is that the run stops
in preflight, so no host is ever touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The ansible-playbook of the venv running the tests, whatever PATH says.
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_site(
    tmp_path: Path, groups: dict[str, list[str]], extra_vars: dict | None = None
) -> subprocess.CompletedProcess[str]:
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
    if extra_vars:
        inventory["all"]["vars"].update(extra_vars)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), "site.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def recap_changed(stdout: str) -> dict[str, int]:
    """changed=N of every host in the last PLAY RECAP of a playbook run."""
    if "PLAY RECAP" not in stdout:
        return {}
    recap = stdout.rsplit("PLAY RECAP", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s*:.*?\bchanged=(\d+)", recap, re.M)}


def assert_stopped_unchanged(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result.stdout
    changed = recap_changed(result.stdout)
    assert changed, f"no PLAY RECAP with hosts in the output:\n{result.stdout}"
    assert not any(changed.values()), f"preflight let tasks change hosts: {changed}"


@pytest.mark.parametrize("count", [1, 3, 10, 42])
def test_recap_counts_any_change(count: int) -> None:
    out = f"PLAY RECAP ***\nd1 : ok=4    changed={count}    unreachable=0    failed=1\nd2 : ok=1 changed=0\n"
    assert recap_changed(out) == {"d1": count, "d2": 0}


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


DB = ["d1", "d2", "d3"]
GOOD_SECRETS = {
    "patroni_superuser_password": "s3cret-superuser-0001",
    "patroni_replication_password": "s3cret-replication-01",
    "patroni_restapi_password": "s3cret-restapi-000001",
    "patroni_app_db_password": "s3cret-mlflow-0000001",
    "patroni_monitoring_password": "s3cret-monitor-000001",
    "pgbackrest_s3_key_secret": "s3cret-pgbackrest-s3-1",
    "pgbackrest_cipher_pass": "s3cret-pgbackrest-cipher-0000001",
    # The MLflow group is present in these inventories, so its secrets must be set too.
    "mlflow_db_password": "s3cret-mlflow-db-0001",
    "mlflow_s3_secret_key": "s3cret-mlflow-s3-0001",
    "mlflow_secret_key": "s3cret-mlflow-flask-01",
    "mlflow_auth_admin_password": "s3cret-mlflow-admin-1",
}


@pytest.mark.parametrize(
    ("groups", "extra", "message"),
    [
        ({"etcd": DB, "postgres": DB[:2], "mlflow": ["m1"]}, GOOD_SECRETS, "at least 3 database nodes"),
        (
            {"etcd": DB, "postgres": DB, "mlflow": ["m1"]},
            {**GOOD_SECRETS, "patroni_superuser_password": ""},
            "Weak or reused database passwords: patroni_superuser_password: empty",
        ),
        (
            {"etcd": DB, "postgres": DB, "mlflow": ["m1"]},
            {**GOOD_SECRETS, "patroni_restapi_password": "password"},
            "patroni_restapi_password: a well-known default or placeholder",
        ),
        (
            {"etcd": DB, "postgres": DB, "mlflow": ["m1"]},
            {**GOOD_SECRETS, "patroni_replication_password": "s3cret-superuser-0001"},
            "patroni_superuser_password and patroni_replication_password: the same secret for two purposes",
        ),
        (
            {"etcd": DB, "postgres": DB, "mlflow": ["m1"]},
            {**GOOD_SECRETS, "patroni_retry_timeout": 10},
            "loop_wait + 2 * retry_timeout <= ttl",
        ),
        ({"etcd": DB, "postgres": DB, "mlflow": []}, GOOD_SECRETS, "no hosts in group 'mlflow'"),
    ],
    ids=[
        "two-db-nodes",
        "empty-superuser-password",
        "default-restapi-password",
        "reused-password",
        "timer-rule",
        "no-mlflow-hosts",
    ],
)
def test_patroni_bad_input_is_refused(tmp_path: Path, groups: dict, extra: dict, message: str) -> None:
    result = run_site(tmp_path, groups, {**extra, "hokusai_required_groups": ["etcd", "postgres", "mlflow"]})
    assert_stopped_unchanged(result)
    assert message in result.stdout + result.stderr


def test_example_inventory_without_vault_is_refused() -> None:
    """The production-shaped inventory references vault variables; without the vault it stops."""
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/example", "site.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert_stopped_unchanged(result)
    assert "Secrets not set: patroni_superuser_password (group postgres:" in result.stdout
    assert "mlflow_auth_admin_password (group mlflow:" in result.stdout


def test_secret_from_a_missing_vault_variable_is_refused(tmp_path: Path) -> None:
    """A secret that points at an undefined vault variable counts as unset, and is named."""
    secrets = {**GOOD_SECRETS, "patroni_restapi_password": "{{ vault_patroni_restapi_password }}"}
    result = run_site(
        tmp_path,
        {"etcd": DB, "postgres": DB, "mlflow": ["m1"]},
        {**secrets, "hokusai_required_groups": ["etcd", "postgres", "mlflow"]},
    )
    assert_stopped_unchanged(result)
    assert "Secrets not set: patroni_restapi_password (group postgres: d1, d2, d3)." in result.stdout
