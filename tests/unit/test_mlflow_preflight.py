"""The MLflow and load-balancer roles refuse bad input in preflight.

Each case runs the roles' preflight task files against local hosts with one
thing wrong, and checks the message that names it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

GOOD = {
    "mlflow_db_hosts": ["127.0.0.1:5433"],
    "mlflow_db_password": "db-password-0123456789",
    "mlflow_s3_endpoints": ["10.0.0.1:9000"],
    "mlflow_s3_bucket": "mlflow-artifacts",
    "mlflow_s3_access_key": "mlflow",
    "mlflow_s3_secret_key": "s3-secret-0123456789",
    "mlflow_secret_key": "flask-secret-0123456789",
    "mlflow_auth_admin_password": "admin-password-0123",
    "nginx_lb_backends": [],
    "mlflow_address": "10.0.0.5",
}

PLAYBOOK = [
    {
        "name": "MLflow preflight",
        "hosts": "mlflow",
        "gather_facts": True,
        "tasks": [
            {
                "name": "Checks",
                "ansible.builtin.include_role": {"name": "mlflow", "tasks_from": "preflight.yml"},
            }
        ],
    },
    {
        "name": "Load balancer preflight",
        "hosts": "loadbalancer",
        "gather_facts": True,
        "tasks": [
            {
                "name": "Checks",
                "ansible.builtin.include_role": {"name": "nginx_lb", "tasks_from": "preflight.yml"},
            }
        ],
    },
]


def run(tmp_path: Path, mlflow_hosts: list[str], extra: dict) -> subprocess.CompletedProcess[str]:
    hosts = {"lb1": {}, **{h: {} for h in mlflow_hosts}}
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                **GOOD,
                **extra,
            },
            "hosts": hosts,
            "children": {
                "mlflow": {"hosts": {h: {} for h in mlflow_hosts}},
                "loadbalancer": {"hosts": {"lb1": {}}},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_good_input_passes(tmp_path: Path) -> None:
    result = run(tmp_path, ["m1"], {"nginx_lb_tls_enabled": False})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("mlflow_hosts", "extra", "message"),
    [
        (["m1"], {"mlflow_db_hosts": []}, "No MLflow database is defined"),
        (["m1"], {"mlflow_s3_bucket": ""}, "No artifact store is defined"),
        (
            ["m1"],
            {"mlflow_auth_admin_password": "password"},
            "Weak or reused MLflow secrets: mlflow_auth_admin_password: a well-known default or placeholder",
        ),
        (["m1"], {"mlflow_db_password": ""}, "Weak or reused MLflow secrets: mlflow_db_password: empty"),
        (
            ["m1"],
            {"mlflow_secret_key": "db-password-0123456789"},
            "mlflow_db_password and mlflow_secret_key: the same secret for two purposes",
        ),
        ([], {}, "No MLflow instance to balance"),
        (
            ["m1"],
            {"nginx_lb_tls_enabled": True, "nginx_lb_tls_use_lab_ca": False},
            "nginx_lb_tls_enabled is true but",
        ),
    ],
    ids=[
        "no-database",
        "no-bucket",
        "default-admin-password",
        "empty-db-password",
        "reused-secret",
        "no-backends",
        "tls-without-certs",
    ],
)
def test_bad_input_is_refused(tmp_path: Path, mlflow_hosts: list[str], extra: dict, message: str) -> None:
    result = run(tmp_path, mlflow_hosts, extra)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
