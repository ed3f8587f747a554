"""roles/s3_endpoint refuses a bad configuration before it changes anything.

Runs the role's preflight alone (tasks_from: preflight.yml) on the controller
with the local connection: nothing is installed. The good case proves the
refusals come from the input, not from the harness.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_preflight(
    tmp_path: Path, minio_hosts: list[str], **variables: object
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            },
            "children": {
                "client": {"hosts": {"client": {}}},
                "minio": {"hosts": {h: {} for h in minio_hosts}},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    play = [
        {
            "name": "Preflight only",
            "hosts": "client",
            "gather_facts": True,
            "gather_subset": ["min"],
            "vars": variables,
            "tasks": [
                {"ansible.builtin.include_role": {"name": "s3_endpoint", "tasks_from": "preflight.yml"}}
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process listens on (this test process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    said = " ".join(result.stdout.split())
    assert result.returncode != 0, said[-2000:]
    assert message in said, said[-3000:]


def test_a_good_configuration_passes(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    result = run_preflight(
        tmp_path,
        ["m1", "m2"],
        s3_endpoint_port=free_port(),
        s3_endpoint_stats_port=0,
        s3_endpoint_ca_src=str(ca),
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_no_minio_node_is_refused(tmp_path: Path) -> None:
    refused(
        run_preflight(tmp_path, [], s3_endpoint_port=free_port()),
        "s3_endpoint_backends must list every MinIO node",
    )


def test_a_node_without_port_is_refused(tmp_path: Path) -> None:
    result = run_preflight(
        tmp_path, ["m1"], s3_endpoint_backends=["m1:9000", "m2"], s3_endpoint_port=free_port()
    )
    refused(result, "s3_endpoint_backends must list every MinIO node once as host:port")


def test_a_port_held_by_another_process_is_refused(tmp_path: Path, taken_port: int) -> None:
    result = run_preflight(tmp_path, ["m1"], s3_endpoint_port=taken_port)
    refused(result, "in use by another process")
    assert f"Port(s) {taken_port} of the S3 endpoint" in " ".join(result.stdout.split())


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    result = run_preflight(
        tmp_path, ["m1"], s3_endpoint_port=free_port(), s3_endpoint_ca_src=str(tmp_path / "nope")
    )
    refused(result, "is not a file on the controller")
