"""The role's preflight refuses bad inventories with a message that says why.

Runs the preflight alone (tasks_from: preflight.yml) on the controller, with
throw-away inventories whose hosts use the local connection: nothing is
installed anywhere. One good inventory proves the refusals come from the
input and not from the harness.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
GOOD_SECRET = "s3cr3t-long-enough-1234"  # noqa: S105 - throw-away value for a preflight that installs nothing


def run_preflight(tmp_path: Path, hosts: dict[str, dict], group_vars: dict) -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "minio"
    fake_bin.write_text("#!/bin/sh\n")
    base = {
        "minio_binary_src": str(fake_bin),
        "minio_mc_binary_src": str(fake_bin),
        "minio_drives": ["/srv/minio/drive1", "/srv/minio/drive2"],
        "minio_drives_are_mountpoints": False,
        "minio_root_user": "hokusai-admin",
        "minio_root_password": GOOD_SECRET,
        "minio_mlflow_secret_key": GOOD_SECRET + "m",
        "minio_prometheus_secret_key": GOOD_SECRET + "p",
    }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
            "children": {"minio": {"hosts": hosts, "vars": {**base, **group_vars}}},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    play = [
        {
            "name": "Preflight only",
            "hosts": "minio",
            "gather_facts": True,
            "gather_subset": ["min"],
            "tasks": [{"ansible.builtin.include_role": {"name": "minio", "tasks_from": "preflight.yml"}}],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


FOUR = {f"minio{i}": {} for i in range(1, 5)}
WEAK = "Weak or reused MinIO secrets: "
SILENT_30S = "would silently become MinIO's default of 30 s"


def test_a_good_inventory_passes(tmp_path):
    result = run_preflight(tmp_path, FOUR, {})
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("hosts", "group_vars", "expected"),
    [
        pytest.param(
            {**FOUR, "minio4": {"minio_drives": ["/srv/minio/drive1"]}},
            {},
            "same number of drives on every node",
            id="different-drive-counts",
        ),
        pytest.param(
            {"minio1": {}},
            {"minio_drives": ["/srv/minio/drive1"]},
            "Invalid MinIO layout",
            id="no-valid-erasure-set",
        ),
        pytest.param(
            {"store-a": {}, "store-b": {}, "store-c": {}, "store-d": {}},
            {},
            "expansion notation",
            id="names-the-notation-cannot-express",
        ),
        pytest.param(
            FOUR,
            {"minio_mlflow_unversioned_prefixes": ["no-trailing-slash"]},
            "minio_mlflow_unversioned_prefixes takes at most 10 key patterns",
            id="unversioned-prefix-without-slash",
        ),
        pytest.param(
            FOUR,
            {"minio_binary_src": "", "minio_binary_url": "https://example.org/minio"},
            "Never install an unpinned",
            id="url-without-sha256",
        ),
        pytest.param(FOUR, {"minio_drive_max_timeout": "1s"}, SILENT_30S, id="drive-timeout-1s"),
        pytest.param(FOUR, {"minio_drive_max_timeout": "500ms"}, SILENT_30S, id="drive-timeout-under-1s"),
        pytest.param(FOUR, {"minio_drive_max_timeout": "3"}, SILENT_30S, id="drive-timeout-without-unit"),
    ],
)
def test_bad_input_is_refused_with_a_reason(tmp_path, hosts, group_vars, expected):
    result = run_preflight(tmp_path, hosts, group_vars)
    # Failures go to stdout or stderr depending on the environment's callback settings.
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert expected in said, said[-3000:]


# Secrets the shared policy (roles/secret_policy) refuses: (variables, what the message names).
WEAK_SECRETS = {
    "default-password": ({"minio_root_password": "minioadmin"}, "minio_root_password: a well-known default"),
    "missing-secret": ({"minio_mlflow_secret_key": ""}, "minio_mlflow_secret_key: empty"),
    "reused-secret": (
        {"minio_mlflow_secret_key": "{{ minio_root_password }}"},
        "minio_root_password and minio_mlflow_secret_key: the same secret for two purposes",
    ),
}


@pytest.mark.parametrize(("group_vars", "reason"), WEAK_SECRETS.values(), ids=WEAK_SECRETS.keys())
def test_weak_secret_is_refused_naming_the_variable(tmp_path, group_vars, reason):
    result = run_preflight(tmp_path, FOUR, group_vars)
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert WEAK + reason in said, said[-3000:]


def test_explicit_volumes_accept_names_the_notation_cannot_express(tmp_path):
    hosts = {"store-a": {}, "store-b": {}, "store-c": {}, "store-d": {}}
    result = run_preflight(tmp_path, hosts, {"minio_volumes_explicit": True})
    assert result.returncode == 0, result.stdout[-3000:]
